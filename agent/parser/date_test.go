package parser

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
)

// The layout gates only skip layouts that could not have parsed the input:
// over formatted dates of many layouts, their case and character mutations
// and random strings, gated and ungated parsing pick the same time.
func TestDateGatesAreExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	layouts := append(append([]string{}, dateLayouts...), yearless...)
	layouts = append(layouts, time.ANSIC, time.RFC822, time.RFC822Z, time.RFC850, time.Kitchen, time.Stamp,
		time.StampMicro, time.DateOnly, time.DateTime, "01/02/2006 15:04", "02-Jan-2006", "Monday Jan 2 2006",
		"January 2 15:04:05", "2006-1-2 3:4:5", "Jan  2 15:04:05")
	var inputs []string
	for range 400 {
		tm := time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(27)-13)*3600))
		for _, l := range layouts {
			s := tm.Format(l)
			inputs = append(inputs, s, strings.ToUpper(s), strings.ToLower(s))
			for range 3 {
				b := []byte(s)
				i := r.IntN(min(len(b), 8))
				switch r.IntN(3) {
				case 0:
					const alpha = "0123456789 -/:,.TZaJnM"
					b[i] = alpha[r.IntN(len(alpha))]
				case 1:
					b = append(b[:i], b[i+1:]...)
				default:
					b = append(b[:i], append([]byte{"0123456789 -/"[r.IntN(13)]}, b[i:]...)...)
				}
				inputs = append(inputs, string(b))
			}
		}
	}
	for range 2000 {
		b := make([]byte, r.IntN(30))
		for i := range b {
			const alpha = " 0123456789-/:,.TZJanFebMonSunNovDec+"
			b[i] = alpha[r.IntN(len(alpha))]
		}
		inputs = append(inputs, string(b))
	}
	parsed := 0
	for _, in := range inputs {
		in = strings.TrimSpace(in)
		a, aok := parseDate(in, "", true)
		b, bok := parseDate(in, "", false)
		if aok != bok || a.String() != b.String() {
			t.Fatalf("%q: gated %v %v, ungated %v %v", in, a, aok, b, bok)
		}
		if aok {
			parsed++
		}
	}
	if parsed < len(inputs)/4 {
		t.Fatalf("only %d of %d inputs parsed: the test would not see a wrong gate", parsed, len(inputs))
	}
	t.Logf("%d inputs, %d parsed", len(inputs), parsed)
}

func BenchmarkParseDate(b *testing.B) {
	for _, in := range []string{"25/Nov/2026:10:00:01 +0000", "Nov 25 10:00:01", "2026-11-25T10:00:01.123456+01:00"} {
		b.Run(in, func(b *testing.B) {
			e := &event.Event{}
			for b.Loop() {
				ParseDate(in, e)
			}
		})
	}
}

// Upstream's month-first layout and its Unix-epoch fallback: a value no
// layout matches is read as whole epoch seconds before it becomes now.
func TestParseDateMonthFirstAndEpoch(t *testing.T) {
	for in, want := range map[string]string{
		"10/19/2022 05:34:02": "2022-10-19T05:34:02Z", // bind9, suricata fast.log
		"1690466804":          "2023-07-27T14:06:44Z", // webmin
		"1690466804.987":      "2023-07-27T14:06:44Z", // fraction ignored
	} {
		got := ParseDate(in, &event.Event{})["MarshaledTime"]
		if got != want {
			t.Errorf("ParseDate(%q) = %q, want %q", in, got, want)
		}
	}
	// Not a positive epoch: falls back to now.
	for _, in := range []string{"0", "-5", "12ab", ".5"} {
		got, err := time.Parse(time.RFC3339Nano, ParseDate(in, &event.Event{})["MarshaledTime"])
		if err != nil || time.Since(got) > time.Hour {
			t.Errorf("ParseDate(%q) = %v (%v), want now", in, got, err)
		}
	}
}
