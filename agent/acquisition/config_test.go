package acquisition

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConf(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	a := writeConf(t, dir, "10-ssh.toml", `
# sshd
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }

[[source]]
source = "file"
filename = "/var/log/nginx/access.log"
filenames = ["/var/log/nginx/*.error.log"]
labels = { type = "nginx" }
idle_warning = "0"
poll_without_inotify = true
`)
	b := writeConf(t, dir, "20-more.toml", `
[[source]]
source = "file"
filenames = ["/srv/app/*.log"]
idle_warning = "30s"

  [source.labels]
  type = "app"
  env = "prod"
`)
	writeConf(t, dir, "notes.txt", "not = toml [")

	cfgs, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 3 {
		t.Fatalf("got %d sources, want 3", len(cfgs))
	}
	for i, want := range []struct {
		file  string
		line  int
		typ   string
		idle  time.Duration
		poll  bool
		files int
	}{
		{a, 3, "syslog", DefaultIdleWarning, false, 1},
		{a, 8, "nginx", 0, true, 2},
		{b, 2, "app", 30 * time.Second, false, 1},
	} {
		c := cfgs[i]
		if c.File != want.file || c.Line != want.line || c.Labels["type"] != want.typ || c.IdlePeriod() != want.idle ||
			c.PollWithoutInotify != want.poll {
			t.Errorf("source %d: got %s:%d type %q idle %s poll %v", i, c.File, c.Line, c.Labels["type"], c.IdlePeriod(), c.PollWithoutInotify)
		}
		src, err := New(c, Options{})
		if err != nil {
			t.Fatalf("source %d: %v", i, err)
		}
		if got := len(src.(*fileSource).patterns); got != want.files {
			t.Errorf("source %d: %d patterns, want %d", i, got, want.files)
		}
	}
	if cfgs[2].Labels["env"] != "prod" {
		t.Errorf("labels = %v", cfgs[2].Labels)
	}
	if got := cfgs[1].Where(); got != a+":8" {
		t.Errorf("Where() = %q", got)
	}
}

func TestLoadDirMissing(t *testing.T) {
	cfgs, err := LoadDir(filepath.Join(t.TempDir(), "acquis.d"))
	if err != nil || cfgs != nil {
		t.Fatalf("LoadDir(missing) = %v, %v; want nothing and no error", cfgs, err)
	}
}

func TestLoadDirErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"unknown key", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }

[[source]]
source = "file"
filenames = ["/var/log/x.log"]
lables = { type = "syslog" }
`, `:10: source.lables: unknown key`},
		{"unknown table", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }
[source.extra]
a = 1
`, `:6: source.extra: unknown key`},
		{"missing type", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }

[[source]]
source = "file"
filenames = ["/var/log/x.log"]
labels = { env = "prod" }
`, `:7: missing labels.type`},
		{"no labels", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
`, `:2: missing labels.type`},
		{"bad duration", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }
idle_warning = "ten minutes"
`, `:6`},
		{"negative duration", `
[[source]]
source = "file"
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }
idle_warning = "-1s"
`, `negative duration`},
		{"duration as number", `
[[source]]
source = "file"
labels = { type = "syslog" }
idle_warning = 600
`, `idle_warning`},
		{"unknown source", `
[[source]]
source = "kafka"
labels = { type = "syslog" }
`, `:2: source "kafka" is not available`},
		{"no source", `
[[source]]
filenames = ["/var/log/auth.log"]
labels = { type = "syslog" }
`, `:2: missing source`},
		{"syntax", `
[[source]]
source = "file
`, `:3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writeConf(t, dir, "acquis.toml", tc.body)
			_, err := LoadDir(dir)
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want the file and %q", err, tc.want)
			}
		})
	}
}

func TestNewFileErrors(t *testing.T) {
	labels := map[string]string{"type": "syslog"}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Source: "file", Labels: labels, File: "/etc/a.toml", Line: 3}, "/etc/a.toml:3: file source: filenames is empty"},
		{Config{Source: "file", Labels: labels, Filenames: []string{"var/log/x.log"}}, "want an absolute path"},
		{Config{Source: "file", Labels: labels, Filenames: []string{"/var/log/[x.log"}}, "syntax error in pattern"},
		{Config{Source: "file", Labels: labels, Filenames: []string{"/x.log"}, ListenPort: 514}, "syslog keys"},
		{Config{Source: "file", Labels: labels, Filenames: []string{"/x.log"}, JournalctlFilter: []string{"A=b"}}, "journalctl key"},
		{Config{Source: "nope", Labels: labels}, `source "nope" is not available`},
	} {
		_, err := New(tc.cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
}

// TestDispatch checks that each kind and DSN scheme reaches its source.
func TestDispatch(t *testing.T) {
	labels := map[string]string{"type": "syslog"}
	path := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		name string
	}{
		{Config{Source: "file", Labels: labels, Filenames: []string{path}}, "file:" + path},
		{Config{Source: "journalctl", Labels: labels, JournalctlFilter: []string{"_SYSTEMD_UNIT=ssh.service"}}, "journalctl:"},
		{Config{Source: "syslog", Labels: labels, ListenPort: 5514}, "syslog:"},
	} {
		src, err := New(tc.cfg, Options{})
		if err != nil {
			t.Fatalf("New(%s): %v", tc.cfg.Source, err)
		}
		if !strings.HasPrefix(src.Name(), tc.name) {
			t.Errorf("New(%s).Name() = %q, want prefix %q", tc.cfg.Source, src.Name(), tc.name)
		}
	}
	for _, tc := range []struct{ dsn, name, err string }{
		{"file://" + path, "file:" + path, ""},
		{"journalctl://filters=_SYSTEMD_UNIT=ssh.service&filters=_COMM=sshd", "journalctl:", ""},
		{"journalctl://filters=_SYSTEMD_UNIT=ssh.service&since=1h", "", `unknown parameter "since"`},
		{"journalctl://", "", "no filters"},
	} {
		src, err := FromDSN(tc.dsn, labels, Options{})
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("FromDSN(%q) = %v, want an error with %q", tc.dsn, err, tc.err)
			}
		case err != nil:
			t.Errorf("FromDSN(%q): %v", tc.dsn, err)
		case !strings.HasPrefix(src.Name(), tc.name):
			t.Errorf("FromDSN(%q).Name() = %q, want prefix %q", tc.dsn, src.Name(), tc.name)
		}
	}
}
