package leakybucket_test

import (
	"slices"
	"testing"

	"github.com/rampart-ips/rampart/agent/leakybucket"
)

// Filters opening with the same guard share its test per event, but a
// scenario whose expressions write the event (SetMeta) makes the next
// ones test it again: "after" sees the value "writer" set although
// "before" found the guard false on the same event; the same for a
// groupby that writes.
func TestGuardRetestedAfterWrite(t *testing.T) {
	doc := `type: trigger
name: test/before
filter: "evt.Meta.log_type == 'rewritten'"
---
type: trigger
name: test/writer
filter: "evt.Meta.log_type == 'ssh_failed-auth' && evt.SetMeta('log_type', 'rewritten')"
---
type: trigger
name: test/after
filter: "evt.Meta.log_type == 'rewritten' && evt.Meta.service == 'ssh'"
---
type: trigger
name: test/before-groupby
filter: "evt.Meta.service == 'rewritten'"
---
type: trigger
name: test/groupby-writer
filter: "true"
groupby: "evt.SetMeta('service', 'rewritten') ? 'k' : 'k'"
---
type: trigger
name: test/after-groupby
filter: "evt.Meta.service == 'rewritten'"
---
type: trigger
name: test/other
filter: "evt.Meta.service in ['http', 'nginx'] && evt.Meta.log_type == 'rewritten'"
`
	e := leakybucket.NewEngine(loadYAML(t, doc), true)
	var got []string
	for _, ov := range e.Pour(sshEvent("1.2.3.4", "root", "ssh_failed-auth", t0)) {
		got = append(got, ov.Overflow.Alert.Scenario)
	}
	slices.Sort(got)
	if want := []string{"test/after", "test/after-groupby", "test/groupby-writer", "test/writer"}; !slices.Equal(got, want) {
		t.Errorf("overflows of %v, want %v", got, want)
	}
}
