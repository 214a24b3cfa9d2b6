package main

import (
	"strings"
	"testing"
)

// The counter finds every community decision whatever the write sizes,
// markers split across writes included, and no other origin.
func TestCapiCounter(t *testing.T) {
	body := `{"new":[` + strings.Repeat(`{"duration":"24h","origin":"CAPI","value":"10.0.0.1"},{"origin":"crowdsec"},`, 37) + `],"deleted":[]}`
	for size := 1; size <= 64; size++ {
		c := &capiCounter{}
		for i := 0; i < len(body); i += size {
			c.Write([]byte(body[i:min(len(body), i+size)]))
		}
		if c.n != 37 {
			t.Fatalf("writes of %d bytes: counted %d, want 37", size, c.n)
		}
	}
}
