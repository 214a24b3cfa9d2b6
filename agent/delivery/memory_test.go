package delivery

import (
	"bytes"
	"testing"
)

// The memory buffer keeps the newest items within both bounds, and
// acknowledging by number ignores items the bounds already dropped.
func TestMemQueueBounds(t *testing.T) {
	m := &memQueue{max: 3, maxBytes: 10}
	p := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	if d := m.add([][]byte{p(2), p(2), p(2), p(2)}); d != 1 || m.len() != 3 {
		t.Fatalf("count bound: dropped %d, kept %d", d, m.len())
	}
	if d := m.add([][]byte{p(7)}); d != 2 || m.len() != 2 || m.bytes != 9 {
		t.Fatalf("byte bound: dropped %d, kept %d (%d bytes)", d, m.len(), m.bytes)
	}
	items := m.peek(0)
	if items[0].seq != 3 || items[1].seq != 4 {
		t.Fatalf("kept %+v, want items 3 and 4", items)
	}
	m.ack(4) // 0..2 were dropped already
	if m.len() != 1 || m.bytes != 7 || m.peek(1)[0].seq != 4 {
		t.Fatalf("after ack: %d items, %d bytes", m.len(), m.bytes)
	}
	m.ack(5)
	if m.len() != 0 || m.bytes != 0 {
		t.Fatalf("after the last ack: %d items, %d bytes", m.len(), m.bytes)
	}
}
