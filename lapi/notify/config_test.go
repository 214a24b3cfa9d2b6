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
	// An empty file defines nothing either.
	write("empty.toml", "")
	if cs, err := LoadDir(dir); err != nil || len(cs) != 2 {
		t.Errorf("with an empty file: %v %+v", err, cs)
	}
	// A name defined twice names both files, whatever their formats.
	write("http.yaml", "type: http\nname: hook\nformat: x\nurl: http://127.0.0.1/\n")
	_, err = LoadDir(dir)
	if want := fmt.Sprintf(`notification "hook" is defined twice: in %s and in %s; `, filepath.Join(dir, "http.toml"), filepath.Join(dir, "http.yaml")); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("duplicate name: %v, want %q...", err, want)
	}
	if err := os.Remove(filepath.Join(dir, "http.yaml")); err != nil {
		t.Fatal(err)
	}
	write("dup.toml", "[[notification]]\ntype = \"file\"\nname = \"f\"\nformat = \"x\"\nlog_path = \"/tmp/x\"\n[[notification]]\ntype = \"file\"\nname = \"f\"\nformat = \"y\"\nlog_path = \"/tmp/y\"\n")
	if _, err := LoadDir(dir); err == nil || !strings.HasPrefix(err.Error(), `notification "f" is defined twice in `+filepath.Join(dir, "dup.toml")+"; ") {
		t.Errorf("duplicate name in one file: %v", err)
	}
	if cs, err := LoadDir(filepath.Join(dir, "missing")); err != nil || cs != nil {
		t.Errorf("missing folder: %v %v", cs, err)
	}
}

// exampleMarker is the line of a shipped example after which every line
// is the configuration, commented out.
const exampleMarker = `# ---- uncomment every line below this one (remove its first "# ") ----`

// uncommentExample is a shipped example as an operator uncomments it:
// the first "# " (or the lone "#" of a blank line) of every line after
// the marker removed. Every such line must be commented.
func uncommentExample(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, body, ok := strings.Cut(string(data), "\n"+exampleMarker+"\n")
	if !ok || strings.Contains(body, exampleMarker) {
		t.Fatalf("%s: want one marker line %q", path, exampleMarker)
	}
	for i, l := range strings.Split(head, "\n") {
		if l != "#" && !strings.HasPrefix(l, "# ") {
			t.Errorf("%s:%d: header line not a comment: %q", path, i+1, l)
		}
	}
	var out strings.Builder
	for i, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		switch {
		case l == "#":
		case strings.HasPrefix(l, "# "):
			out.WriteString(l[2:])
		default:
			t.Errorf("%s: line %d after the marker is not commented: %q", path, i+1, l)
		}
		out.WriteString("\n")
	}
	return []byte(out.String())
}

// The examples the package installs in /etc/crowdsec/notifications are
// TOML with their whole configuration commented out: as shipped they
// define nothing (a CrowdSec user's YAML files, upstream's names, load
// beside them without a name defined twice); uncommented, each defines
// upstream's notification of its file name (http.toml as upstream's
// http.yaml) and can send.
func TestShippedExamples(t *testing.T) {
	shipped := filepath.Join("..", "..", "config", "notifications")
	cs, err := LoadDir(shipped)
	if err != nil || len(cs) != 0 {
		t.Fatalf("the shipped examples define %d notifications (%v), want none", len(cs), err)
	}
	// Beside upstream's files, as a switching user has them.
	both := t.TempDir()
	for name, body := range upstreamFiles {
		if err := os.WriteFile(filepath.Join(both, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths, err := filepath.Glob(filepath.Join(shipped, "*"))
	if err != nil {
		t.Fatal(err)
	}
	uncommented := t.TempDir()
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(both, filepath.Base(p)), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(uncommented, filepath.Base(p)), uncommentExample(t, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(names, " "); got != "email.toml file.toml http.toml sentinel.toml slack.toml splunk.toml" {
		t.Errorf("shipped examples: %s", got)
	}
	if cs, err := LoadDir(both); err != nil || len(cs) != len(upstreamFiles) {
		t.Errorf("beside upstream's files: %d notifications, %v", len(cs), err)
	}
	cs, err = LoadDir(uncommented)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range cs {
		got[filepath.Base(c.Source)] = c.Type + " " + c.Name
		if c.Problem != nil {
			t.Errorf("%s cannot send: %v", c.Name, c.Problem)
		}
		if _, err := c.Render([]*models.Alert{TestAlert(time.Now())}); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
	}
	want := map[string]string{}
	for name, body := range upstreamFiles {
		ys, err := ParseYAML([]byte(body), name)
		if err != nil || len(ys) != 1 {
			t.Fatalf("%s: %v", name, err)
		}
		want[strings.TrimSuffix(name, ".yaml")+".toml"] = ys[0].Type + " " + ys[0].Name
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("uncommented examples define\n%v\nwant upstream's\n%v", got, want)
	}
	// Values as written, not only names: a sample of each kind.
	for _, c := range cs {
		switch c.Name {
		case "email_default":
			if c.SMTPPort != 465 || c.AuthType != "login" || len(c.ReceiverEmails) != 1 {
				t.Errorf("email: %+v", c)
			}
		case "file_default":
			if c.Rotate != (Rotate{Enabled: true, MaxSize: 100, MaxFiles: 5, MaxAge: 30, Compress: true}) || c.FileFormat != "json" {
				t.Errorf("file: %+v", c)
			}
		case "http_default":
			if c.Method != "POST" || c.Headers["Content-Type"] != "application/json" || c.GroupWait.Duration != 0 {
				t.Errorf("http: %+v", c)
			}
		}
	}
}
