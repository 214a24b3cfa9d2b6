package iptables

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// inNS runs fn on a locked OS thread that has joined the network namespace
// ns; a negative ns runs fn in place. Sockets that fn opens and processes
// that it starts belong to ns: a child inherits the namespace of the thread
// that forks it, and the Go runtime never clones new threads from a locked
// one. If the thread cannot return to its namespace it stays locked, so the
// runtime discards it when the goroutine ends instead of reusing it.
func inNS(ns netns.NsHandle, fn func() error) error {
	if ns < 0 {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns fd %d: %w", int(ns), err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}
