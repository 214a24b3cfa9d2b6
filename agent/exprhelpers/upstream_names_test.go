package exprhelpers

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/expr-lang/expr/conf"
	"github.com/rampart-ips/rampart/internal/testhub"
)

// upstreamHelperNames reads the names listed after "Upstream's expr
// helpers, all N names" in section 9 of hub-format.md.
func upstreamHelperNames(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "**Upstream's expr helpers"):
			in = true
		case in && l == "" && len(names) > 0:
			return names, nil
		case in && l != "":
			names = append(names, strings.Fields(l)...)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no expr helper list in " + path)
	}
	return names, nil
}

// TestUpstreamHelpersRegistered checks that every expr helper upstream
// registers (hub-format.md, section 9) is registered here too, with both
// option sets, so no hub rule fails to compile for a missing function.
func TestUpstreamHelpersRegistered(t *testing.T) {
	names, err := upstreamHelperNames(testhub.Reference(t, "hub-format.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 83 {
		t.Fatalf("%d names in section 9, want 83: %v", len(names), names)
	}
	h := New(t.TempDir())
	for set, opts := range map[string][]func(*conf.Config){"Options": toConf(h.Options()), "OptionsUnoptimized": toConf(h.OptionsUnoptimized())} {
		c := conf.CreateNew()
		for _, o := range opts {
			o(c)
		}
		for _, n := range names {
			if _, ok := c.Functions[n]; !ok {
				t.Errorf("%s: upstream helper %s is not registered", set, n)
			}
		}
	}
}

func toConf[T ~func(*conf.Config)](opts []T) []func(*conf.Config) {
	out := make([]func(*conf.Config), len(opts))
	for i, o := range opts {
		out[i] = o
	}
	return out
}
