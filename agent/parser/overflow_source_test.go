package parser

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/grok"
	"github.com/rampart-ips/rampart/models"
)

// A postoverflow's statics may rewrite the alert's source, as
// crowdsecurity/ipv6_to_range does (its Value to the /64 range, its Scope
// to Range); the overflow's Sources entry shows the change too, as
// upstream's shares those fields with the alert source.
func TestStaticsSetAlertSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "po.yaml")
	doc := `filter: "true"
name: test/ipv6_to_range
statics:
  - target: evt.Overflow.Alert.Source.Value
    value: "2001:db8:85a3::/64"
  - target: evt.Overflow.Alert.Source.Scope
    value: Range
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New([]Item{{Name: "test/ipv6_to_range", Stage: "s00-enrich", Path: path}}, grok.NewLibrary(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const ip = "2001:0db8:85a3:0000:0000:8a2e:0370:7334"
	src := models.Source{IP: ip, Scope: "Ip", Value: ip}
	alertSrc := src
	evt := event.Event{Type: event.OVFLW, Process: true, Overflow: event.RuntimeAlert{
		Alert: &models.Alert{Scenario: "test/s", Source: &alertSrc}, Sources: map[string]models.Source{ip: src}}}
	if err := p.Parse(&evt, nil); err != nil {
		t.Fatal(err)
	}
	want := models.Source{IP: ip, Scope: "Range", Value: "2001:db8:85a3::/64"}
	if got := *evt.Overflow.Alert.Source; got != want {
		t.Errorf("alert source %+v, want %+v", got, want)
	}
	if got := evt.Overflow.Sources[ip]; got != want {
		t.Errorf("Sources[%s] %+v, want %+v", ip, got, want)
	}
}
