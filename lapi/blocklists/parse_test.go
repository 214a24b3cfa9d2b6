package blocklists

import (
	"strings"
	"testing"
)

func values(p Parsed) string {
	var out []string
	for _, e := range p.Entries {
		out = append(out, e.Scope+":"+e.Value)
	}
	return strings.Join(out, " ")
}

func TestParseFormats(t *testing.T) {
	for _, c := range []struct {
		name, format, body, want, detected string
		bad                                int
	}{
		{"plain", "plain", "# a feed\n\n192.0.2.1\n198.51.100.0/24 # a comment\n 2001:db8::1 \n10.0.0.1/32\n192.0.2.1\n", "Ip:192.0.2.1 Range:198.51.100.0/24 Ip:2001:db8::1 Ip:10.0.0.1", "plain", 0},
		{"drop", "drop", "; Spamhaus DROP List 2026/12/07\n; Last-Modified: Mon, 07 Dec 2026\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n", "Range:1.10.16.0/20 Range:2.56.192.0/22", "drop", 0},
		{"drop detected", "", "; Spamhaus DROP List\n1.10.16.0/20 ; SBL256894\n", "Range:1.10.16.0/20", "drop", 0},
		{"ndjson", "crowdsec", `{"value":"192.0.2.7","description":"x","expiration":"2026-12-08T00:00:00Z"}` + "\n" + `{"value":"2001:db8::/48"}` + "\n\n", "Ip:192.0.2.7 Range:2001:db8::/48", "crowdsec", 0},
		{"ndjson detected", "", `{"value":"192.0.2.7"}` + "\n", "Ip:192.0.2.7", "crowdsec", 0},
		{"plain detected", "", "192.0.2.1\r\n192.0.2.2\r\n", "Ip:192.0.2.1 Ip:192.0.2.2", "plain", 0},
		{"a few bad lines are skipped", "", "192.0.2.1\nnot-an-ip\n192.0.2.2\n192.0.2.3\n", "Ip:192.0.2.1 Ip:192.0.2.2 Ip:192.0.2.3", "plain", 1},
		{"masked", "plain", "192.0.2.77/24\n", "Range:192.0.2.0/24", "plain", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := Parse([]byte(c.body), c.format)
			if err != nil {
				t.Fatal(err)
			}
			if got := values(p); got != c.want || p.Format != c.detected || p.Bad != c.bad {
				t.Fatalf("got %q (%s, %d bad), want %q (%s, %d bad)", got, p.Format, p.Bad, c.want, c.detected, c.bad)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ name, format, body, want string }{
		{"html error page", "", "<html>\n<body>502 Bad Gateway</body>\n</html>\n", "3 of 3 lines are not plain entries (lines 1, 2, 3)"},
		{"mostly bad", "plain", "192.0.2.1\nx\ny\n", "2 of 3 lines"},
		{"empty", "", "", "no entry"},
		{"comments only", "", "# nothing today\n", "no entry"},
		{"wrong format", "crowdsec", "192.0.2.1\n", "1 of 1 lines are not crowdsec entries"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.body), c.format)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("192.0.2.1\n# c\n198.51.100.0/24 ; x\n"), "")
	f.Add([]byte(`{"value":"192.0.2.1"}`), "crowdsec")
	f.Fuzz(func(t *testing.T, data []byte, format string) {
		p, err := Parse(data, format)
		if err == nil && len(p.Entries) == 0 {
			t.Fatal("no error and no entry")
		}
		for _, e := range p.Entries {
			if e.Scope != "Ip" && e.Scope != "Range" || e.Range.Size == 0 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}
