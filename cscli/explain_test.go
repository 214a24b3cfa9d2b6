package cscli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
)

func runExplainCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"explain"}, args...))
	err := root.Execute()
	return out.String(), err
}

const sshdFailed = "Nov  1 12:00:00 host sshd[42]: Failed password for root from 1.2.3.4 port 22 ssh2"

func TestExplainSSHDLine(t *testing.T) {
	hubDir := testhub.Dir(t)
	out, err := runExplainCmd(t, "--hub", hubDir, "--type", "syslog", "-v", "--log", sshdFailed,
		"--parsers", "crowdsecurity/syslog-logs,crowdsecurity/sshd-logs,crowdsecurity/dateparse-enrich")
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"line: " + sshdFailed,
		"├ s00-raw", "🟢 crowdsecurity/syslog-logs",
		"├ s01-parse", "🟢 crowdsecurity/sshd-logs",
		"├ s02-enrich", "🟢 crowdsecurity/dateparse-enrich",
		"create evt.Meta.source_ip : 1.2.3.4",
		"create evt.Parsed.program : sshd",
		"parser success 🟢",
		"├ Scenarios", "🟢 crowdsecurity/ssh-bf\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "🔴") {
		t.Errorf("a parser failed:\n%s", out)
	}
}

// TestExplainInjectedLine explains an sshd line whose user name copies
// sshd's "from <ip> port <n> ssh2": the hub's rule picks the copy, so the
// line is dropped, and explain says why instead of showing a source and
// the scenarios it would feed.
func TestExplainInjectedLine(t *testing.T) {
	hubDir := testhub.Dir(t)
	line := "Nov  1 12:00:00 host sshd[1]: Failed password for invalid user x from 198.51.100.200 port 22 ssh2 from 203.0.113.9 port 5555 ssh2"
	out, err := runExplainCmd(t, "--hub", hubDir, "--type", "syslog", "-v", "--log", line)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{
		"🔴 crowdsecurity/sshd-logs",
		"create evt.Parsed.sshd_client_ip : 198.51.100.200",
		"parser failure 🔴: dropped by crowdsecurity/sshd-logs: source address 198.51.100.200 (sshd_client_ip, from SSHD_USER_FAIL) is in doubt: the line names 203.0.113.9 in the same place too (outside the parsed fields)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"evt.Meta.source_ip", "Scenarios", "parser success"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has %q:\n%s", bad, out)
		}
	}
}

// TestExplainWholeHub loads every parser and scenario of the index and
// explains a file given as a DSN: an sshd line, an nginx line and junk.
func TestExplainWholeHub(t *testing.T) {
	hubDir := testhub.Dir(t)
	logf := filepath.Join(t.TempDir(), "mixed.log")
	nginx := `1.2.3.4 - - [01/Nov/2026:12:00:00 +0000] "GET /.env HTTP/1.1" 404 153 "-" "curl/8.0"`
	if err := os.WriteFile(logf, []byte(sshdFailed+"\n"+"complete garbage\x00\xff\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runExplainCmd(t, "--hub", hubDir, "--type", "syslog", "--dsn", "file://"+logf)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	blocks := strings.Split(strings.TrimSpace(out), "\n\n")
	if len(blocks) != 2 {
		t.Fatalf("want 2 line blocks, got %d:\n%s", len(blocks), out)
	}
	if !strings.Contains(blocks[0], "parser success 🟢") || !strings.Contains(blocks[0], "🟢 crowdsecurity/ssh-bf\n") {
		t.Errorf("sshd line:\n%s", blocks[0])
	}
	if !strings.Contains(blocks[1], "parser failure 🔴") || strings.Contains(blocks[1], "Scenarios") {
		t.Errorf("junk line:\n%s", blocks[1])
	}
	// the -v-less summary counts created fields
	if !strings.Contains(blocks[0], "🟢 crowdsecurity/sshd-logs (+") {
		t.Errorf("no change summary:\n%s", blocks[0])
	}

	out, err = runExplainCmd(t, "--hub", hubDir, "--type", "nginx", "--log", nginx)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, out)
	}
	for _, want := range []string{"🟢 crowdsecurity/nginx-logs", "🟢 crowdsecurity/http-logs", "parser success 🟢", "crowdsecurity/http-probing", "crowdsecurity/http-sensitive-files"} {
		if !strings.Contains(out, want) {
			t.Errorf("nginx output lacks %q:\n%s", want, out)
		}
	}
	out, err = runExplainCmd(t, "--hub", hubDir, "--type", "nginx", "--log", strings.Replace(nginx, "1.2.3.4", "192.168.1.10", 1))
	if err != nil || !strings.Contains(out, "[whitelisted]") || !strings.Contains(out, "ignored by whitelist") || strings.Contains(out, "Scenarios") {
		t.Errorf("private IP: %v\n%s", err, out)
	}
	// --failures hides lines that parsed
	out, err = runExplainCmd(t, "--hub", hubDir, "--type", "nginx", "--log", nginx, "--failures")
	if err != nil || out != "" {
		t.Errorf("--failures: %v %q", err, out)
	}
}

func TestExplainFileAndStdin(t *testing.T) {
	hubDir := testhub.Dir(t)
	logf := filepath.Join(t.TempDir(), "auth.log")
	if err := os.WriteFile(logf, []byte(sshdFailed+"\r\n\n"+sshdFailed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parsers := "crowdsecurity/syslog-logs,crowdsecurity/sshd-logs,crowdsecurity/dateparse-enrich"
	out, err := runExplainCmd(t, "--hub", hubDir, "--type", "syslog", "--file", logf, "--parsers", parsers, "--scenarios", "crowdsecurity/ssh-bf")
	if err != nil || strings.Count(out, "parser success 🟢") != 2 || strings.Count(out, "🟢 crowdsecurity/ssh-bf\n") != 2 {
		t.Errorf("--file: %v\n%s", err, out)
	}
	root := NewRootCommand()
	var buf bytes.Buffer
	root.SetOut(&buf)
	root.SetErr(&bytes.Buffer{})
	root.SetIn(strings.NewReader("not a syslog line\n"))
	root.SetArgs([]string{"explain", "--hub", hubDir, "--type", "syslog", "--file", "-", "--parsers", parsers, "--only-successful-parsers"})
	if err := root.Execute(); err != nil || !strings.Contains(buf.String(), "parser failure 🔴") || strings.Contains(buf.String(), "🔴 crowdsecurity") {
		t.Errorf("--file -: %v\n%s", err, buf.String())
	}
}

func TestExplainErrors(t *testing.T) {
	hubDir := testhub.Dir(t)
	for _, args := range [][]string{
		{"--hub", hubDir, "--type", "syslog"},
		{"--hub", hubDir, "--log", "x"},
		{"--hub", hubDir, "--type", "syslog", "--log", "x", "--file", "y"},
		{"--hub", hubDir, "--type", "syslog", "--dsn", "journalctl://filters=x"},
		{"--hub", hubDir, "--type", "syslog", "--log", "x", "--parsers", "nobody/nothing"},
		{"--hub", t.TempDir(), "--type", "syslog", "--log", "x"},
	} {
		if _, err := runExplainCmd(t, args...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// brokenHub is a hub folder with one good and one broken parser.
func brokenHub(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"index.json": `{"parsers": {
			"test/good": {"path": "parsers/s01-parse/test/good.yaml", "stage": "s01-parse"},
			"test/broken": {"path": "parsers/s01-parse/test/broken.yaml", "stage": "s01-parse"}}}`,
		"parsers/s01-parse/test/good.yaml":   "name: test/good\ngrok:\n  pattern: \"^hello %{WORD:who}$\"\n  apply_on: Line.Raw\n",
		"parsers/s01-parse/test/broken.yaml": "name: test/broken\ndescription: oops\nfilter: \"evt.Line.Raw ==\"\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestExplainBrokenItems(t *testing.T) {
	dir := brokenHub(t)
	// the whole hub: the broken parser is skipped, the rest explains
	out, err := runExplainCmd(t, "--hub", dir, "--type", "x", "--log", "hello world")
	if err != nil || !strings.Contains(out, "🟢 test/good") || !strings.Contains(out, "parser success") {
		t.Errorf("whole hub: %v\n%s", err, out)
	}
	// a broken parser asked for by name is an error naming file, item and line
	_, err = runExplainCmd(t, "--hub", dir, "--type", "x", "--log", "hello world", "--parsers", "test/good,test/broken")
	if err == nil {
		t.Fatal("no error for a broken parser given by name")
	}
	for _, want := range []string{"broken.yaml", "test/broken", "line 3", "filter", "(1:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// a line longer than the pipeline takes says so
	out, err = runExplainCmd(t, "--hub", dir, "--type", "x", "--log", "hello "+strings.Repeat("w", 1<<20))
	if err != nil || !strings.Contains(out, "line longer than") {
		t.Errorf("long line: %v\n%s", err, out[len(out)-200:])
	}
}
