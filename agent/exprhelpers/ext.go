package exprhelpers

import "sync"

// extState holds the state of the XML, stash and network helpers, per
// *Helpers (one per loaded rule set), created on first use so New and the
// data-file code need not know about it.
type extState struct {
	xml   xmlState
	stash stashStore
	net   netState
	dec   decisionState
}

// extHolder is embedded in Helpers.
type extHolder struct {
	once sync.Once
	s    *extState
}

func (h *Helpers) ext() *extState {
	h.extH.once.Do(func() { h.extH.s = newExtState(h) })
	return h.extH.s
}

func newExtState(h *Helpers) *extState {
	s := &extState{}
	s.stash.now = h.now
	s.net.init(h.now)
	s.dec.init(h.now)
	return s
}
