package apiclient

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/models"
)

// TestScannerMatchesEncodingJSON checks the fast scanner against
// encoding/json on tricky bodies.
func TestScannerMatchesEncodingJSON(t *testing.T) {
	bodies := []string{
		`{"new": [], "deleted": []}`,
		`{"deleted":null,"new":null}`,
		`{"new":[{"duration":"3h59m58s","id":42,"origin":"cscli","scenario":"manual 'ban' from 'h\"x'","scope":"Ip","type":"ban","uuid":"u","value":"192.0.2.7"}],"deleted":[{"duration":"-1s","id":7,"origin":"crowdsec","scenario":"a\\u00e9\\ud83d\\ude00\\n","scope":"Range","type":"ban","value":"10.0.0.0/8","simulated":false,"extra":{"a":[1,2,{"b":null}]}}]}`,
		` { "extra" : [ true , false ] , "new" : [ { "value" : "::1" , "id" : 1 , "type":null } ] } `,
	}
	for i, body := range bodies {
		var want models.StreamResponse
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		var gotNew, gotDel []models.Decision
		s := newScanner(strings.NewReader(body))
		err := s.stream(func(deleted bool, d *models.Decision) error {
			if deleted {
				gotDel = append(gotDel, *d)
			} else {
				gotNew = append(gotNew, *d)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		cmp := func(what string, got []models.Decision, want []*models.Decision) {
			if len(got) != len(want) {
				t.Fatalf("body %d %s: %d decisions, want %d", i, what, len(got), len(want))
			}
			for j := range got {
				w := *want[j]
				w.Simulated = nil
				w.UUID = "" // not decoded by the scanner
				if fmt.Sprintf("%+v", got[j]) != fmt.Sprintf("%+v", w) {
					t.Errorf("body %d %s[%d]:\n got %+v\nwant %+v", i, what, j, got[j], w)
				}
			}
		}
		cmp("new", gotNew, want.New)
		cmp("deleted", gotDel, want.Deleted)
	}
}

func TestScannerRejectsBrokenBodies(t *testing.T) {
	for _, body := range []string{``, `{`, `{"new":[{"value":"1.2.3.4"`, `{"new":[{"value":"x\q"}]}`, `[1,2]`, `{"new":[{"id":"x"}]}`} {
		s := newScanner(strings.NewReader(body))
		if err := s.stream(func(bool, *models.Decision) error { return nil }); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}

func FuzzScanner(f *testing.F) {
	f.Add(`{"new":[{"duration":"1h","id":1,"origin":"o","scenario":"s","scope":"Ip","type":"ban","value":"1.2.3.4"}],"deleted":[]}`)
	f.Fuzz(func(t *testing.T, body string) {
		s := newScanner(strings.NewReader(body))
		_ = s.stream(func(bool, *models.Decision) error { return nil })
	})
}

func BenchmarkScanner1M(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"new": [`)
	for i := 0; i < 1_000_000; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"duration":"3h59m59s","id":%d,"origin":"cscli-import","scenario":"manual import","scope":"Ip","type":"ban","uuid":"6f1c3e2a-0000-4000-8000-%012d","value":"10.%d.%d.%d"}`, i, i, i>>16&255, i>>8&255, i&255)
	}
	sb.WriteString(`], "deleted": []}`)
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		n := 0
		s := newScanner(strings.NewReader(body))
		if err := s.stream(func(bool, *models.Decision) error { n++; return nil }); err != nil || n != 1_000_000 {
			b.Fatal(err, n)
		}
	}
}
