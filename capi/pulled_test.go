package capi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

// pullAnswer reads a stream answer as it arrives; it must keep exactly
// what decoding the whole StreamResponse with encoding/json and checking
// each decision keeps (keys without case, any order, nulls, unknown keys),
// and fail where that fails.
func TestPullAnswerDecodesAsStreamResponse(t *testing.T) {
	cases := []string{
		`{"new":[{"scenario":"crowdsecurity/ssh-bf","scope":"Ip","decisions":[{"value":"192.0.2.1","duration":"24h"},{"value":"192.0.2.2","duration":"1h30m"}]}]}`,
		// upstream's order: decisions first; ranges, bad values and durations, a country
		`{"links":{"blocklists":[{"name":"l","url":"http://x/l","remediation":"ban","scope":"ip","duration":"24h"}],"allowlists":[{"name":"a","url":"http://x/a"}]},
		  "new":[{"decisions":[{"duration":"12h","value":"192.0.2.0/24"},{"duration":"12h","value":"not-an-ip"},{"duration":"-1h","value":"192.0.2.9"},{"duration":"bogus","value":"192.0.2.8"}],"scenario":"s/range","scope":"range"},
		         {"decisions":[{"duration":"2h","value":"FR"}],"scenario":"s/geo","scope":"country"},
		         {"decisions":[{"duration":"2h","value":"2001:db8::1"},{"duration":"2h","value":"2001:db8::/64"}],"scenario":"s/v6","scope":"ip"}],
		  "deleted":[{"scope":"ip","decisions":["192.0.2.7","192.0.2.6"]}]}`,
		`{"New":[{"Scenario":"a","SCOPE":"ip","Decisions":[{"Value":"198.51.100.1","Duration":"1h"}]}],"Deleted":null}`,
		`{"new":null,"deleted":null,"links":null}`,
		`{"new":[null,{"scenario":"a","scope":"ip","decisions":null},{"scenario":null,"scope":"ip","decisions":[]}]}`,
		`{"extra":{"x":[1,2,{"y":null}]},"new":[{"other":[[]],"scenario":"a","scope":"ip","decisions":[{"value":"198.51.100.2","duration":"3h","extra":true}]}],"more":"z"}`,
		`{"new":[{"scope":"ip","decisions":[{"value":"198.51.100.3","duration":"1h"}],"scenario":"first"},{"scenario":"second","decisions":[{"value":"198.51.100.4","duration":"1h"}],"scope":"ip"}]}`,
		`null`,
		`{}`,
		// failures
		``,
		`{"new":[{"scenario":"a","scope":"ip","decisions":[{"value":"192.0.2.1","duration":"24h"}`,
		`{"new":{}}`,
		`{"new":[{"scenario":"a","scope":"ip","decisions":"x"}]}`,
		`{"new":[{"scenario":"a","scope":"ip","decisions":[{"value":1,"duration":"1h"}]}]}`,
		`{"new":[{"scenario":7,"scope":"ip","decisions":[]}]}`,
		`{"deleted":{}}`,
		`[]`,
	}
	for _, body := range cases {
		var want StreamResponse
		wantErr := json.Unmarshal([]byte(body), &want)
		var a pullAnswer
		err := a.readBody(strings.NewReader(body))
		if (err != nil) != (wantErr != nil) {
			t.Errorf("%s: error %v, encoding/json's %v", body, err, wantErr)
			continue
		}
		if err != nil {
			continue
		}
		kept, bad := checked(want)
		var got []string
		p := &a.community
		for i := 0; i < p.Len(); i++ {
			it := p.at(i)
			k := p.kinds[it.kind]
			r, err := p.rangeOf(it)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s|%s|%s|%s|%v", k.scenario, k.scope, it.value, time.Duration(it.until-a.now.UnixNano()), r))
		}
		if !reflect.DeepEqual(got, kept) || p.bad != bad {
			t.Errorf("%s:\n kept %q, %d invalid\n want %q, %d invalid", body, got, p.bad, kept, bad)
		}
		if !reflect.DeepEqual(a.deleted, want.Deleted) || !reflect.DeepEqual(a.links, want.Links) {
			t.Errorf("%s: deleted %v links %v, want %v %v", body, a.deleted, a.links, want.Deleted, want.Links)
		}
	}
}

// checked is what applying r keeps, as the checks before streaming did.
func checked(r StreamResponse) (kept []string, bad int) {
	for _, g := range r.New {
		scope := models.NormalizeScope(g.Scope)
		for _, d := range g.Decisions {
			dur, err := models.ParseDuration(d.Duration)
			if err != nil || dur <= 0 {
				bad++
				continue
			}
			var rng store.Range
			if store.IsAddressScope(scope) {
				if rng, err = store.ParseRange(d.Value); err != nil {
					bad++
					continue
				}
			}
			kept = append(kept, fmt.Sprintf("%s|%s|%s|%s|%v", g.Scenario, scope, d.Value, dur, rng))
		}
	}
	return kept, bad
}

// A pull's items go in blocks: filtering keeps the order across them and
// releases the blocks no longer needed.
func TestPulledBlocks(t *testing.T) {
	p := &pulled{origin: store.OriginCAPI}
	k := p.kind("s", "ban", "Ip")
	now := time.Now()
	n := 3*pulledBlock + 17
	for i := range n {
		p.add(k, fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), "1h", now)
	}
	p.add(k, "not-an-ip", "1h", now)
	if p.Len() != n || p.bad != 1 {
		t.Fatalf("%d items, %d invalid; want %d, 1", p.Len(), p.bad, n)
	}
	// Keep every third address.
	dropped := p.filter(func(_ string, r store.Range) bool { return (r.End-10<<24)%3 != 0 })
	want := 0
	for i := range n {
		if i%3 == 0 {
			want++
		}
	}
	if p.Len() != want || dropped != n-want || len(p.blocks) != (want+pulledBlock-1)/pulledBlock {
		t.Fatalf("%d items in %d blocks, %d dropped; want %d", p.Len(), len(p.blocks), dropped, want)
	}
	ds := p.Fill(nil, 0, p.Len())
	for j, d := range ds {
		i := 3 * j
		if v := fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255); d.Value != v || d.UUID == "" || d.Origin != store.OriginCAPI || d.Range.Size != 4 {
			t.Fatalf("decision %d: %+v, want %s", j, d, v)
		}
	}
}

// BenchmarkPullAnswer reads a 100k-address community answer: what the
// decoding allocates per decision (the answer is never held whole).
func BenchmarkPullAnswer(b *testing.B) {
	const n = 100000
	g := StreamGroup{Scenario: "crowdsecurity/ssh-bf", Scope: "ip"}
	for i := range n {
		g.Decisions = append(g.Decisions, StreamDecision{Value: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), Duration: "167h59m12.5s"})
	}
	body, err := json.Marshal(StreamResponse{New: []StreamGroup{g}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		var a pullAnswer
		if err := a.readBody(bytes.NewReader(body)); err != nil || a.community.Len() != n {
			b.Fatalf("%d decisions, %v", a.community.Len(), err)
		}
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/float64(b.N*n), "B/decision")
}
