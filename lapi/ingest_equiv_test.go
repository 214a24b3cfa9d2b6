package lapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/models"
)

// An alert pushed as clients write it (taken by models' hand-written
// decoder) and the same alert with one unknown key (which sends it
// through encoding/json, the path every push took before) must be stored
// and read back identically, odd strings and truncated meta included.
func TestPostAlertsFastAndFullDecodeStoreTheSame(t *testing.T) {
	l := startLAPI(t, nil)
	l.login()
	odd := "quote\" backslash\\ <tag> & amp; tab\t newline\n nul\x00 é 日本 \u2028 INVALID \x7f"
	a := agentAlert("192.0.2.77", "crowdsecurity/http-probing")
	a.Message = odd
	a.Labels = []string{"a", odd}
	a.Source.Range, a.Source.AsName, a.Source.AsNumber, a.Source.Cn = "192.0.2.0/24", odd, "64500", "FR"
	a.Source.Latitude, a.Source.Longitude = 48.8566, 2.3522
	a.Meta = []models.Meta{{Key: "service", Value: "http"}, {Key: odd, Value: odd}}
	a.Events = []*models.Event{
		{Timestamp: "2026-02-12T00:00:09Z", Meta: []models.Meta{{Key: "http_path", Value: "/a?b=1&c=<2>"}, {Key: odd, Value: odd}}},
		{Timestamp: "2026-02-12T00:00:11Z", Meta: []models.Meta{{Key: strings.Repeat("k", 300), Value: strings.Repeat("v", 5000)}}},
		{Timestamp: "2026-02-12T00:00:10.123456789+02:00"},
		{Timestamp: "2026-02-12T00:00:12Z", Meta: []models.Meta{}},
	}
	sim := false
	a.Decisions = []*models.Decision{{Duration: "4h", Origin: "crowdsec", Scenario: odd, Scope: "ip", Type: "ban", Value: "192.0.2.77", Simulated: &sim}}
	body := func(uuid string, unknownKey bool) []byte {
		c := *a
		c.UUID = uuid
		b, err := json.Marshal([]*models.Alert{&c})
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("INVALID"), []byte("\xff\xfe\xe6\x97"))
		if unknownKey {
			b = bytes.Replace(b, []byte(`[{`), []byte(`[{"x_unknown":{"a":[1,null]},`), 1)
		}
		return b
	}
	var ids [2]string
	for i, unknown := range []bool{false, true} {
		r := l.pushRaw(body(fmt.Sprintf("6f1c2b0a-3d4e-4f5a-8b9c-0d1e2f3a4b5%d", i), unknown))
		var got []string
		if r.Status != 201 || json.Unmarshal(r.Body, &got) != nil || len(got) != 1 {
			t.Fatalf("push %d: %s", i, r)
		}
		ids[i] = got[0]
	}
	var read [2]string
	for i, id := range ids {
		r := l.send("GET", "/v1/alerts/"+id, l.jwtHdr(), nil)
		var got models.Alert
		if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil {
			t.Fatalf("GET alert %s: %s", id, r)
		}
		got.ID, got.UUID, got.CreatedAt = 0, "", ""
		for _, d := range got.Decisions {
			d.ID, d.Duration = 0, ""
		}
		b, _ := json.Marshal(got)
		read[i] = string(b)
	}
	if read[0] != read[1] {
		t.Errorf("stored differently:\nhand-written decoder %s\nencoding/json        %s", truncForLog([]byte(read[0])), truncForLog([]byte(read[1])))
	}
	if !strings.Contains(read[0], `\u003ctag\u003e`) || !strings.Contains(read[0], "\ufffd") || !strings.Contains(read[0], `"`+strings.Repeat("v", 4095)+`"`) {
		t.Errorf("odd strings not kept as before: %s", truncForLog([]byte(read[0])))
	}
}
