package apiclient

import (
	"strconv"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/models"
)

// TestScanFollow: whole lines are handed over with their cursor; a body
// that ends between lines is a clean end, one cut inside a line or a line
// without a cursor is an error, and a cut line's cursor is never given.
func TestScanFollow(t *testing.T) {
	const d1 = `{"duration":"3h59m","id":1,"origin":"cscli","scenario":"s","scope":"Ip","type":"ban","value":"192.0.2.1"}`
	const d2 = `{"duration":"-1s","id":2,"origin":"cscli","scenario":"s","scope":"Ip","type":"ban","value":"192.0.2.2"}`
	for _, c := range []struct {
		name, body string
		want       string // decisions and cursors, in order
		cursors    string // the cursors alone
		err        string
	}{
		{"empty body", "", "", "", ""},
		{"lines", `{"cursor":5,"new": [], "deleted": []}` + "\n" + `{"cursor":7,"new": [` + d1 + `], "deleted": [` + d2 + `]}` + "\n" + `{"cursor":9}` + "\n",
			"@5 +192.0.2.1 -192.0.2.2 @7 @9", "@5 @7 @9", ""},
		{"unknown keys skipped", `{"cursor":3,"later":{"x":[1,2]},"new":null}` + "\n", "@3", "@3", ""},
		{"cut inside a line", `{"cursor":5}` + "\n" + `{"cursor":7,"new": [` + d1 + "," + d2[:20], "", "@5", "line 2"},
		{"no cursor", `{"new": []}` + "\n", "", "", "line 1: no cursor"},
		{"not an object", "[]\n", "", "", "line 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var seen, cursors []string
			err := ScanFollow(strings.NewReader(c.body), func(deleted bool, d *models.Decision) error {
				if deleted {
					seen = append(seen, "-"+d.Value)
				} else {
					seen = append(seen, "+"+d.Value)
				}
				return nil
			}, func(cur int64) error {
				seen = append(seen, "@"+strconv.FormatInt(cur, 10))
				cursors = append(cursors, "@"+strconv.FormatInt(cur, 10))
				return nil
			})
			if (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
				t.Errorf("error %v, want %q", err, c.err)
			}
			if c.err == "" && strings.Join(seen, " ") != c.want {
				t.Errorf("seen %q, want %q", strings.Join(seen, " "), c.want)
			}
			if g := strings.Join(cursors, " "); g != c.cursors {
				t.Errorf("cursors %q, want %q", g, c.cursors)
			}
		})
	}
}
