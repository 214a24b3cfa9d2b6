package notify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/rampart-ips/rampart/models"
)

// errNoCTI is what CrowdsecCTI answers: Rampart has no CTI client.
var errNoCTI = errors.New("CrowdsecCTI: not configured (Rampart has no CTI client)")

// funcMap is what a format can call: sprig's text functions and
// upstream's helpers.
func funcMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	fm["GetMeta"] = getMeta
	fm["Hostname"] = os.Hostname
	fm["HTMLEscape"] = template.HTMLEscapeString
	fm["CrowdsecCTI"] = func(string) (any, error) { return nil, errNoCTI }
	return fm
}

// getMeta returns the values of the key among the alert's events' meta,
// in order, as upstream's GetMeta.
func getMeta(a *models.Alert, key string) []string {
	var out []string
	if a == nil {
		return nil
	}
	for _, e := range a.Events {
		if e == nil {
			continue
		}
		for _, m := range e.Meta {
			if m.Key == key {
				out = append(out, m.Value)
			}
		}
	}
	return out
}

// Render executes the format over alerts, as upstream: the template's
// data is the list of alerts.
func (c *Config) Render(alerts []*models.Alert) (string, error) {
	var b bytes.Buffer
	if err := c.tmpl.Execute(&b, alerts); err != nil {
		return "", fmt.Errorf("notification %q: rendering format: %w", c.Name, err)
	}
	return b.String(), nil
}
