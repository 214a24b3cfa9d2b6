package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/models"
)

func TestParseLayouts(t *testing.T) {
	// One notification at the top level, as upstream's single-document
	// files, and several as [[notification]] tables.
	c := mustParse(t, `type = "http"
name = "a"
format = "x"
url = "http://127.0.0.1/"`)
	if c.Method != "POST" || c.Timeout.Duration != DefaultTimeout || c.Source != "test.toml" {
		t.Errorf("defaults: %+v", c)
	}
	cs, err := Parse([]byte(`
[[notification]]
type = "slack"
name = "s"
format = "x"
webhook = "https://hooks.slack.test/x"

[[notification]]
type = "email"
name = "e"
format = "x"
smtp_host = "mail.test"
receiver_emails = ["a@b.test"]
group_wait = "30s"
`), "multi.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[0].Name != "s" || cs[1].Name != "e" {
		t.Fatalf("got %d: %+v", len(cs), cs)
	}
	e := cs[1]
	if e.SMTPPort != 25 || e.EncryptionType != "ssltls" || e.AuthType != "none" || e.SenderEmail != "crowdsec@crowdsec.local" ||
		e.EmailSubject != "Crowdsec notification" || e.HeloHost != "localhost" || e.GroupWait.Duration != 30*time.Second {
		t.Errorf("email defaults: %+v", e)
	}
}

// What makes a file wrong fails its load; a type-specific value missing
// or wrong only makes the notification unusable (Problem), which is an
// error once a profile names it (TestUnusableNotification).
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		doc, want string
		fatal     bool
	}{
		{"type = \"http\"\nname = \"a\"\nformat = \"x\"\nurl = \"http://h/\"\nuri = \"x\"", "n.toml:5: uri: unknown key", true},
		{"type = \"http\"\nformat = \"x\"\nurl = \"http://h/\"", "missing name", true},
		{"type = \"teams\"\nname = \"a\"\nformat = \"x\"", `notification "a": type "teams" is not built in (http, slack, email, file, splunk or sentinel): Rampart runs no plugin binaries, so a notification-teams plugin`, true},
		{"name = \"a\"\nformat = \"x\"", "missing type", true},
		{"type = \"http\"\nname = \"a\"\nurl = \"http://h/\"", "missing format", true},
		{"type = \"http\"\nname = \"a\"\nformat = \"{{.Foo\"\nurl = \"http://h/\"", "format", true},
		{"type = \"slack\"\nname = \"a\"\nformat = \"x\"\nwebhook = \"http://h/\"\nsmtp_host = \"m\"", "key smtp_host belongs to type email, not slack", true},
		{"type = \"http\"\nname = \"a\"\nformat = \"x\"\ntoken = \"t\"\nurl = \"http://h/\"", "key token belongs to type splunk, not http", true},
		{"type = \"file\"\nname = \"a\"\nformat = \"x\"\nlog_path = \"/a.log\"\n[rotate]\nmax_sise = 3", "max_sise", true},
		{"type = \"http\"\nname = \"a\"\nformat = \"x\"\nurl = \"http://h/\"\ntimeout = \"soon\"", "timeout", true},
		{"type = \"http\"\nname = \"a\"\nformat = \"x\"", "missing url", false},
		{"type = \"http\"\nname = \"a\"\nformat = \"x\"\nurl = \"ftp://h/\"", "scheme", false},
		{"type = \"email\"\nname = \"a\"\nformat = \"x\"\nsmtp_host = \"m\"", "missing receiver_emails", false},
		{"type = \"email\"\nname = \"a\"\nformat = \"x\"\nsmtp_host = \"m\"\nreceiver_emails = [\"a@b\"]\nauth_type = \"ntlm\"", "auth_type", false},
		{"type = \"email\"\nname = \"a\"\nformat = \"x\"\nsmtp_host = \"m\"\nreceiver_emails = [\"a@b\"]\nauth_type = \"plain\"", "needs smtp_username", false},
		{"type = \"email\"\nname = \"a\"\nformat = \"x\"\nsmtp_host = \"m\"\nreceiver_emails = [\"a@b\"]\nencryption_type = \"tls\"", "encryption_type", false},
		{"type = \"file\"\nname = \"a\"\nformat = \"x\"\nlog_path = \"rel.log\"", "absolute", false},
		{"type = \"file\"\nname = \"a\"\nformat = \"x\"\nlog_path = \"/a.log\"\nfile_format = \"xml\"", "file_format", false},
		{"type = \"splunk\"\nname = \"a\"\nformat = \"x\"\nurl = \"<SPLUNK_HTTP_URL>\"\ntoken = \"t\"", "scheme", false},
		{"type = \"splunk\"\nname = \"a\"\nformat = \"x\"\nurl = \"https://h:8088/services/collector\"", "missing token", false},
		{"type = \"sentinel\"\nname = \"a\"\nformat = \"x\"\nshared_key = \"a2V5\"\nlog_type = \"t\"", "missing customer_id", false},
		{"type = \"sentinel\"\nname = \"a\"\nformat = \"x\"\ncustomer_id = \"XXX-XXX\"\nshared_key = \"XXXXXXX\"\nlog_type = \"t\"", "shared_key is not base64", false},
		{"type = \"sentinel\"\nname = \"a\"\nformat = \"x\"\ncustomer_id = \"c\"\nshared_key = \"a2V5\"\nlog_type = \"bad-type\"", "log_type", false},
	} {
		cs, err := Parse([]byte(tc.doc), "n.toml")
		if !tc.fatal {
			if err != nil || len(cs) != 1 {
				t.Errorf("%q: %v, want one notification with a problem", tc.doc, err)
				continue
			}
			err = cs[0].Problem
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "n.toml") {
			t.Errorf("%q: error %v, want one from n.toml naming %q", tc.doc, err, tc.want)
		}
	}
}

func TestEnvExpansion(t *testing.T) {
	t.Setenv("RAMPART_TEST_TOKEN", "s3cret")
	c := mustParse(t, `type = "http"
name = "a"
format = "cost: $5 ${RAMPART_TEST_TOKEN}"
url = "http://127.0.0.1/${RAMPART_TEST_TOKEN}/$RAMPART_TEST_UNSET"
headers = { Authorization = "Bearer ${RAMPART_TEST_TOKEN}" }`)
	if c.URL != "http://127.0.0.1/s3cret/$RAMPART_TEST_UNSET" || c.Headers["Authorization"] != "Bearer s3cret" {
		t.Errorf("expanded: url %q headers %v", c.URL, c.Headers)
	}
	// The format is a template, not a place for secrets (upstream
	// expands it too, eating the dollar signs of a template).
	if got, _ := c.Render(nil); got != "cost: $5 ${RAMPART_TEST_TOKEN}" {
		t.Errorf("format rendered %q", got)
	}
}

// A value with dollar signs that name no defined variable is kept as
// written (upstream's rule): a password is not rewritten.
func TestEnvExpansionKeepsUndefined(t *testing.T) {
	t.Setenv("RAMPART_TEST_CHANNEL", "#sec")
	t.Setenv("RAMPART_TEST_EMPTY", "")
	for in, want := range map[string]string{
		"pa$$w0rd$x${y}$":                  "pa$$w0rd$x${y}$",
		"${RAMPART_TEST_CHANNEL}-$5-${ x}": "#sec-$5-${ x}",
		"$RAMPART_TEST_CHANNEL.x${":        "#sec.x${",
		"a${RAMPART_TEST_EMPTY}b":          "ab",
	} {
		if got := expandDefined(in); got != want {
			t.Errorf("%q expanded to %q, want %q", in, got, want)
		}
	}
	c := mustParse(t, `type = "email"
name = "m"
format = "x"
smtp_host = "mail.test"
receiver_emails = ["a@b.test"]
smtp_username = "u"
smtp_password = "pa$$w0rd$x"`)
	if c.SMTPPassword != "pa$$w0rd$x" {
		t.Errorf("password %q", c.SMTPPassword)
	}
	y, err := ParseYAML([]byte("type: slack\nname: s\nformat: x\nwebhook: https://hooks.slack.test/x\nchannel: ${RAMPART_TEST_CHANNEL}\n"), "s.yaml")
	if err != nil || len(y) != 1 || y[0].Channel != "#sec" {
		t.Errorf("YAML channel: %v %+v", err, y)
	}
}

func TestLoadDirAndReferences(t *testing.T) {
	dir := t.TempDir()
	write := func(name, doc string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("http.toml", "type = \"http\"\nname = \"hook\"\nformat = \"x\"\nurl = \"http://127.0.0.1/\"")
	// A file all comments (the shipped examples) defines nothing.
	write("slack.toml", "# type = \"slack\"\n# name = \"slack_default\"\n")
	write("notes.txt", "not a notification")
	// Upstream's YAML files are read too.
	write("slack.yaml", "type: slack\nname: slack_default\nformat: x\nwebhook: https://hooks.slack.test/x\n")
	cs, err := LoadDir(dir)
	if err != nil || len(cs) != 2 || cs[0].Name != "hook" || cs[1].Name != "slack_default" {
		t.Fatalf("LoadDir: %v %+v", err, cs)
	}
	if err := CheckReferences(map[string][]string{"hook": {"p"}}, cs, dir); err != nil {
		t.Errorf("known name: %v", err)
	}
	err = CheckReferences(map[string][]string{"hook": {"p"}, "mail": {"default_ip_remediation"}}, cs, dir)
	if err == nil || !strings.Contains(err.Error(), `profile "default_ip_remediation" names notification "mail"`) {
		t.Errorf("unknown name: %v", err)
	}
	write("dup.toml", "type = \"file\"\nname = \"hook\"\nformat = \"x\"\nlog_path = \"/tmp/x\"")
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("duplicate name: %v", err)
	}
	if cs, err := LoadDir(filepath.Join(dir, "missing")); err != nil || cs != nil {
		t.Errorf("missing folder: %v %v", cs, err)
	}
}

// The examples the package installs in /etc/crowdsec/notifications (YAML,
// upstream's file names) load, can send, and name nothing a profile uses
// yet; their TOML forms (installed as documentation) say the same.
func TestShippedExamples(t *testing.T) {
	load := func(dir string) map[string]*Config {
		t.Helper()
		cs, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*Config{}
		for _, c := range cs {
			if c.Problem != nil {
				t.Errorf("%s cannot send: %v", c.Name, c.Problem)
			}
			if _, err := c.Render([]*models.Alert{TestAlert(time.Now())}); err != nil {
				t.Errorf("%s: %v", c.Name, err)
			}
			out[c.Name] = c
		}
		return out
	}
	yamls := load(filepath.Join("..", "..", "config", "notifications"))
	tomls := load(filepath.Join("..", "..", "config", "examples", "notifications"))
	names := map[string]string{}
	for n, c := range yamls {
		names[n] = c.Type + " in " + filepath.Base(c.Source)
		if tc := tomls[n]; tc == nil || !sameConfig(c, tc) {
			t.Errorf("%s: the TOML example differs from the YAML one:\n%+v\n%+v", n, c, tc)
		}
	}
	want := map[string]string{"http_default": "http in http.yaml", "slack_default": "slack in slack.yaml", "email_default": "email in email.yaml",
		"file_default": "file in file.yaml", "splunk_default": "splunk in splunk.yaml", "sentinel_default": "sentinel in sentinel.yaml"}
	if fmt.Sprint(names) != fmt.Sprint(want) || len(tomls) != len(yamls) {
		t.Errorf("examples %v (and %d in TOML), want %v", names, len(tomls), want)
	}
}
