package hubtest

import (
	"os"
	"path/filepath"
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
			if res.Failure != "" || res.Skipped != "" || !res.Passed {
				t.Fatalf("%s%s", res.Failure, res.Skipped)
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
