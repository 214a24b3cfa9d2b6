package loggen

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math"
	"strings"
	"testing"
)

type genFunc func(w io.Writer, n int, seed int64) error

func TestDeterministic(t *testing.T) {
	for name, f := range map[string]genFunc{"sshd": SSHD, "nginx": Nginx} {
		var a, b, c bytes.Buffer
		if err := f(&a, 20000, 42); err != nil {
			t.Fatal(err)
		}
		if err := f(&b, 20000, 42); err != nil {
			t.Fatal(err)
		}
		if err := f(&c, 20000, 43); err != nil {
			t.Fatal(err)
		}
		if sha256.Sum256(a.Bytes()) != sha256.Sum256(b.Bytes()) {
			t.Errorf("%s: same seed gave different bytes", name)
		}
		if bytes.Equal(a.Bytes(), c.Bytes()) {
			t.Errorf("%s: different seeds gave the same bytes", name)
		}
		if n := strings.Count(a.String(), "\n"); n != 20000 {
			t.Errorf("%s: %d lines, want 20000", name, n)
		}
	}
}

func TestHostileRatio(t *testing.T) {
	for name, c := range map[string]struct {
		f    func(io.Writer, int, int64) (int, error)
		want float64
	}{"sshd": {SSHDCount, SSHDHostileRatio}, "nginx": {NginxCount, NginxHostileRatio}} {
		n := 100000
		got, err := c.f(io.Discard, n, 7)
		if err != nil {
			t.Fatal(err)
		}
		r := float64(got) / float64(n)
		t.Logf("%s: hostile ratio %.4f", name, r)
		if math.Abs(r-c.want) > 0.015 {
			t.Errorf("%s: hostile ratio %.3f, want about %.2f", name, r, c.want)
		}
	}
}
