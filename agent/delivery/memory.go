package delivery

import "sync"

// memQueue holds the alerts the disk queue could not take (its
// filesystem is full, read-only or failing), oldest first, until they
// are delivered or written to disk. Items are numbered in their own
// sequence; a record taken from here has mem set. Push adds at the back;
// only the delivery loop (and Close, once it has stopped) takes from the
// front, so an alert is never both sent from memory and written to disk.
// It is safe for concurrent use.
type memQueue struct {
	max      int   // items kept; past it the oldest go
	maxBytes int64 // and past this many payload bytes

	mu    sync.Mutex
	items []memItem
	bytes int64  // of the items' payloads
	next  uint64 // number of the next item added
}

type memItem struct {
	seq     uint64
	payload []byte // the alert as JSON, as a disk record holds it
}

// add keeps payloads, dropping the oldest items past either bound; it
// returns how many it dropped.
func (m *memQueue) add(payloads [][]byte) (dropped int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range payloads {
		m.items = append(m.items, memItem{seq: m.next, payload: p})
		m.bytes += int64(len(p))
		m.next++
	}
	over := func() bool {
		return m.max > 0 && len(m.items)-dropped > m.max || m.maxBytes > 0 && m.bytes > m.maxBytes
	}
	for dropped < len(m.items) && over() {
		m.bytes -= int64(len(m.items[dropped].payload))
		dropped++
	}
	if dropped > 0 {
		// Copy rather than reslice so the dropped payloads can be freed.
		m.items = append([]memItem(nil), m.items[dropped:]...)
	}
	return dropped
}

// peek returns up to n items from the front (n <= 0: all) without
// removing them.
func (m *memQueue) peek(n int) []memItem {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n <= 0 || n > len(m.items) {
		n = len(m.items)
	}
	return append([]memItem(nil), m.items[:n]...)
}

// ack removes the items numbered below upto (delivered, dropped or
// written to disk). Items dropped by the bound meanwhile are already gone.
func (m *memQueue) ack(upto uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := 0
	for i < len(m.items) && m.items[i].seq < upto {
		m.bytes -= int64(len(m.items[i].payload))
		i++
	}
	if i == len(m.items) {
		m.items = nil // let a burst's backing array go
		return
	}
	m.items = m.items[i:]
}

func (m *memQueue) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.items)
}
