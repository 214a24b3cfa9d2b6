package manpage

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testInfo = Info{Version: "1.2.3~rc1", Date: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}

// render is Render for a test: "" (logged) without man-db.
func render(t *testing.T, path string) string {
	t.Helper()
	text, err := Render(path)
	if errors.Is(err, ErrNoMan) {
		t.Logf("%v: %s checked as source only", err, filepath.Base(path))
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return text
}

func TestFlagPage(t *testing.T) {
	fs := flag.NewFlagSet("demo-daemon", flag.ContinueOnError)
	fs.String("c", "/etc/demo/config.toml", "configuration `file`")
	fs.Bool("t", false, "check the configuration and exit")
	fs.Bool("no-capi", true, "accepted for compatibility")
	dir := Flag(fs)
	if err := fs.Parse([]string{"--" + FlagName, t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	p := Page{Name: "demo-daemon", Short: "a daemon", Description: "It does things with -c and \\n escapes, at length enough to be prose.\nSecond line of the same paragraph.\n\n  indented command -x\n  kept as typed",
		Sections: []Section{{Title: "Files", Text: ".hidden file starts with a dot"}}, SeeAlso: []string{"cscli(1)", "nft(8)"}}
	if err := WriteFlagPage(*dir, p, fs, testInfo); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(*dir, "demo-daemon.1")
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "DEMO\-DAEMON" 1 "2026-12-06" "Rampart 1.2.3~rc1"`, `\fB\-c\fR \fIfile\fR`, `Default: /etc/demo/config.toml.`,
		`\fB\-t\fR`, `\fB\-no\-capi\fR`, `\&.hidden`, `\e`, ".nf\n  indented command \\-x"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("page lacks %q:\n%s", want, src)
		}
	}
	if strings.Contains(string(src), FlagName) || strings.Contains(string(src), `write\-man\-pages`) {
		t.Errorf("the hidden flag is on the page:\n%s", src)
	}
	if text := render(t, path); text != "" {
		for _, want := range []string{"demo-daemon - a daemon", "-c file", "Check the configuration and exit.", "cscli(1), nft(8)"} {
			if !strings.Contains(text, want) {
				t.Errorf("rendered page lacks %q:\n%s", want, text)
			}
		}
	}
}

func TestFlagUsageHidesFlag(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("c", "a.toml", "configuration file")
	Flag(fs)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage()
	if !strings.Contains(out.String(), `-c string`) || !strings.Contains(out.String(), `(default "a.toml")`) || strings.Contains(out.String(), FlagName) {
		t.Errorf("usage:\n%s", out.String())
	}
}
