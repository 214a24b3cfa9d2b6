// Package loggen writes deterministic, realistic log files for the agent
// benchmarks: sshd syslog and nginx access logs, each a mix of ordinary
// traffic and hostile campaigns (brute force, enumeration, scans...). The
// same (n, seed) always gives the same bytes. Line shapes come from the
// hub's .tests logs.
package loggen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Start is the first timestamp of every generated log (UTC).
var Start = time.Date(2026, time.February, 12, 0, 0, 0, 0, time.UTC)

// gen holds what both generators share.
type gen struct {
	r       *rand.Rand
	now     time.Time
	meanGap time.Duration
	w       *bufio.Writer
	hostile int
}

func newGen(w io.Writer, seed int64, stream uint64, meanGap time.Duration) *gen {
	return &gen{r: rand.New(rand.NewPCG(uint64(seed), stream)), now: Start, meanGap: meanGap, w: bufio.NewWriterSize(w, 256<<10)}
}

// tick advances the clock by an exponential gap (ms resolution).
func (g *gen) tick() {
	d := time.Duration(g.r.ExpFloat64() * float64(g.meanGap))
	g.now = g.now.Add(d.Truncate(time.Millisecond))
}

func (g *gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

// publicIP returns a random address outside private, loopback, multicast
// and documentation ranges (the whitelists parser drops private ones).
func publicIP(r *rand.Rand) string {
	for {
		a := 1 + r.IntN(222)
		switch a {
		case 10, 100, 127, 169, 172, 192, 198, 203:
			continue
		}
		return fmt.Sprintf("%d.%d.%d.%d", a, r.IntN(256), r.IntN(256), 1+r.IntN(254))
	}
}

func ipPool(r *rand.Rand, n int) []string {
	seen := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		ip := publicIP(r)
		if !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	return out
}

// campaign is one hostile source's script: it emits a line when due.
type campaign struct {
	ip       string
	kind     int
	left     int
	next     time.Time
	gapMin   time.Duration
	gapMax   time.Duration
	pid      int
	port     int
	step     int
	user     string
	payloads []string
	ua       string
}

func (g *gen) due(cs []*campaign) *campaign {
	// deterministic: scan from a random offset, take the first due one
	off := g.r.IntN(len(cs))
	for i := range cs {
		c := cs[(off+i)%len(cs)]
		if !g.now.Before(c.next) {
			return c
		}
	}
	return nil
}

func (g *gen) reschedule(c *campaign) {
	span := c.gapMax - c.gapMin
	d := c.gapMin
	if span > 0 {
		d += time.Duration(g.r.Int64N(int64(span)))
	}
	c.next = g.now.Add(d)
}

// SSHDAttackers returns the hostile addresses SSHD(…, seed) draws from.
func SSHDAttackers(seed int64) []string {
	return ipPool(newGen(io.Discard, seed, 0x55d, 0).r, sshdAttackers)
}

// NginxAttackers returns the hostile addresses Nginx(…, seed) draws from.
func NginxAttackers(seed int64) []string {
	return ipPool(newGen(io.Discard, seed, 0x6e9, 0).r, nginxAttackers)
}

const (
	sshdAttackers  = 300
	nginxAttackers = 400
)
