package alertdiff_test

import (
	"bytes"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/alertdiff"
)

func TestDiff(t *testing.T) {
	bf := "crowdsecurity/ssh-bf"
	ours := []alertdiff.Alert{
		{Scenario: bf, IP: "192.0.2.1", Start: "a", Stop: "b"},
		{Scenario: bf, IP: "192.0.2.1", Start: "c", Stop: "d"},
		{Scenario: bf, IP: "192.0.2.2", Start: "a", Stop: "b"},
		{Scenario: bf, IP: "192.0.2.3", Start: "a", Stop: "b"},
		{Scenario: "crowdsecurity/ssh-slow-bf", IP: "192.0.2.1", Start: "a", Stop: "b"},
	}
	theirs := []alertdiff.Alert{
		{Scenario: bf, IP: "192.0.2.1", Start: "a", Stop: "b"},
		{Scenario: bf, IP: "192.0.2.2", Start: "a", Stop: "x"},
		{Scenario: bf, IP: "192.0.2.4", Start: "a", Stop: "b"},
		{Scenario: "crowdsecurity/ssh-slow-bf", IP: "192.0.2.1", Start: "a", Stop: "b"},
	}
	d := alertdiff.Diff(ours, theirs, 5)
	if len(d) != 2 || d[0].Scenario != bf || !d[1].Same() {
		t.Fatalf("diff: %+v", d)
	}
	got := d[0]
	want := alertdiff.ScenarioDiff{Scenario: bf, Ours: 4, Theirs: 3, OnlyOurs: []string{"192.0.2.3"}, OnlyTheirs: []string{"192.0.2.4"},
		Pairs: 2, PairsDiffer: 1, TimesDiffer: 1, Examples: []alertdiff.Example{
			{IP: "192.0.2.1", Ours: []string{"a..b", "c..d"}, Theirs: []string{"a..b"}},
			{IP: "192.0.2.2", Ours: []string{"a..b"}, Theirs: []string{"a..x"}},
		}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("diff:\n %+v\nwant\n %+v", got, want)
	}
	var out bytes.Buffer
	alertdiff.Report(&out, d, "rampart", "crowdsec")
	for _, s := range []string{"1 of 2 scenarios give the same alerts per source", "only crowdsec alerted on 192.0.2.4", "192.0.2.1: rampart 2 alerts [a..b c..d]; crowdsec 1 alerts [a..b]"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}

func TestFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	as := []alertdiff.Alert{{Scenario: "s", IP: "192.0.2.1", Start: "2026-02-12T10:00:00Z", Stop: "2026-02-12T10:00:10Z", Count: 11}, {Scenario: "s", IP: "192.0.2.2"}}
	if err := alertdiff.WriteFile(path, as); err != nil {
		t.Fatal(err)
	}
	got, err := alertdiff.ReadFile(path)
	if err != nil || !reflect.DeepEqual(got, as) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	if _, err := alertdiff.ReadFile(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing file read without error")
	}
}
