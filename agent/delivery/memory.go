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
	max int // items kept; past it the oldest go

	mu    sync.Mutex
	items []memItem
	next  uint64 // number of the next item added
}

type memItem struct {
	seq     uint64
	payload []byte // the alert as JSON, as a disk record holds it
}

// add keeps payloads, dropping the oldest items past the bound; it
// returns how many it dropped.
func (m *memQueue) add(payloads [][]byte) (dropped int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range payloads {
		m.items = append(m.items, memItem{seq: m.next, payload: p})
		m.next++
	}
	if over := len(m.items) - m.max; m.max > 0 && over > 0 {
		// Copy rather than reslice so the dropped payloads can be freed.
		m.items = append([]memItem(nil), m.items[over:]...)
		dropped = over
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
