package leakybucket

// DisableTrim turns off queue trimming, so tests can check it changes no
// alert.
func DisableTrim(e *Engine) { e.trim = false }

// QueuedEvents is how many events all buckets hold.
func QueuedEvents(e *Engine) int {
	n := 0
	for _, sb := range e.state {
		for _, b := range sb.live {
			n += len(b.queue)
		}
	}
	return n
}
