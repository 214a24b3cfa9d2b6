package cobraman

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/internal/manpage"
)

var testInfo = manpage.Info{Version: "1.2.3~rc1", Date: time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)}

func render(t *testing.T, path string) string {
	t.Helper()
	text, err := manpage.Render(path)
	if errors.Is(err, manpage.ErrNoMan) {
		t.Logf("%v: %s checked as source only", err, filepath.Base(path))
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestCobraPages checks that the tree walked is the one the binary runs:
// a command added to it gets a page and a line in its parent's, hidden
// ones and help get none, and flags come with their defaults.
func TestCobraPages(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "a tool", RunE: func(*cobra.Command, []string) error { return nil }}
	root.PersistentFlags().StringP("config", "c", "/etc/tool.toml", "path to config file")
	dir := Flag(root)
	dec := &cobra.Command{Use: "decisions", Short: "Manage decisions", Aliases: []string{"decision"}}
	list := &cobra.Command{Use: "list [options]", Short: "List decisions.", Long: "List decisions from the LAPI, with filters given by the options below, one per line.",
		Example: "tool decisions list -i 1.2.3.4\n\n.tool decisions list --all", RunE: func(*cobra.Command, []string) error { return nil }}
	list.Flags().BoolP("all", "a", false, "include expired decisions")
	list.Flags().Int("limit", 100, "at most this many")
	dec.AddCommand(list)
	root.AddCommand(dec, &cobra.Command{Use: "secret", Hidden: true, Run: func(*cobra.Command, []string) {}})
	root.CompletionOptions.DisableDefaultCmd = true
	root.InitDefaultHelpCmd()
	root.SetArgs([]string{"--" + manpage.FlagName, t.TempDir()})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if err := WritePages(*dir, root, testInfo, []string{"crowdsec(1)"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(*dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "tool-decisions-list.1 tool-decisions.1 tool.1" {
		t.Fatalf("pages: %s", got)
	}
	src, _ := os.ReadFile(filepath.Join(*dir, "tool-decisions-list.1"))
	for _, want := range []string{`\fB\-a, \-\-all\fR`, `\fB\-\-limit\fR \fIint\fR`, "Default: 100.", "OPTIONS INHERITED FROM PARENT COMMANDS",
		`\fB\-c, \-\-config\fR \fIstring\fR`, `\&.tool decisions`, `.BR "tool\-decisions" "(1)"`} {
		if !strings.Contains(string(src), want) {
			t.Errorf("tool-decisions-list.1 lacks %q:\n%s", want, src)
		}
	}
	if strings.Contains(string(src), `man\-pages`) {
		t.Errorf("the hidden flag is on the page:\n%s", src)
	}
	for _, n := range names {
		text := render(t, filepath.Join(*dir, n))
		if n == "tool.1" && text != "" {
			for _, want := range []string{"decisions", "Manage decisions (see tool-decisions(1))", "tool-decisions(1), crowdsec(1)"} {
				if !strings.Contains(text, want) {
					t.Errorf("tool.1 lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "secret") || strings.Contains(text, "tool-help") {
				t.Errorf("tool.1 lists a hidden command or help:\n%s", text)
			}
		}
	}
}
