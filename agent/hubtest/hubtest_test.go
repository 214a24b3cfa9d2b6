package hubtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// TestSharedHub runs every .tests case of ../shared/hub: parsers and
// scenarios must give exactly the results upstream's hubtest expects.
func TestSharedHub(t *testing.T) {
	dir := testhub.Dir(t)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ".tests"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Hub: h}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			res := r.Run(e.Name())
			if res.Failed() || res.Skipped != "" || !res.Passed {
				t.Fatalf("%s%s%v", res.Error, res.Skipped, res.Failures)
			}
			if res.ParserChecks+res.ScenarioChecks == 0 {
				t.Errorf("no assertion was checked")
			}
		})
	}
}

func TestBasenameShim(t *testing.T) {
	for in, want := range map[string]string{
		`results["s00-raw"]["x"][0].Evt.Meta["datasource_path"] == "a.log"`:               `basename(results["s00-raw"]["x"][0].Evt.Meta["datasource_path"]) == "a.log"`,
		`results[0].Overflow.Alert.Events[0].GetMeta("datasource_path") == "a.log"`:       `basename(results[0].Overflow.Alert.Events[0].GetMeta("datasource_path")) == "a.log"`,
		`basename(results[0].Overflow.Alert.Events[0].GetMeta("datasource_path")) == "a"`: `basename(results[0].Overflow.Alert.Events[0].GetMeta("datasource_path")) == "a"`,
		`results[0].Evt.Meta["source_ip"] == "1.2.3.4"`:                                   `results[0].Evt.Meta["source_ip"] == "1.2.3.4"`,
	} {
		if got := basenameShim(in); got != want {
			t.Errorf("%s\n got %s\nwant %s", in, got, want)
		}
	}
}

// TestCorpusCases runs the whole-hub corpus's tests that need the rules'
// expr helpers in assertions (caddy-logs, base-upsun-httplog-logs), a
// static override of evt.Line.Module (windows-bf, iis-xml-logs) or the
// GeoIP databases, which the corpus does not ship: those are skipped.
func TestCorpusCases(t *testing.T) {
	dir := testhub.Corpus(t)
	h, err := hub.OpenHub(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Hub: h}
	for _, name := range []string{"caddy-logs", "base-upsun-httplog-logs", "windows-bf", "iis-xml-logs"} {
		if res := r.Run(name); !res.Passed {
			t.Errorf("%s: %s %v", name, res.Error, res.Failures)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "GeoLite2-City.mmdb")); err == nil {
		return
	}
	for _, name := range []string{"geoip-enrich", "magento-ccs-by-as", "magento-ccs-by-country",
		"sshd-impossible-travel", "sshd-impossible-travel-user", "sftpgo-impossible-travel"} {
		if res := r.Run(name); !strings.HasPrefix(res.Skipped, "needs GeoLite2 databases") || res.Failed() {
			t.Errorf("%s: not skipped: %+v", name, res)
		}
	}
}
