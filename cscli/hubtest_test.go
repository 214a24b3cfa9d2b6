package cscli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/internal/testhub"
)

func runHubtestCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	root.SetArgs(append([]string{"hubtest", "run"}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestHubtestRun(t *testing.T) {
	hubDir := testhub.Dir(t)
	out, err := runHubtestCmd(t, "--hub", hubDir, "ssh-bf", "whitelists")
	if err != nil || !strings.Contains(out, "PASS  ssh-bf (") || !strings.Contains(out, "2 tests: 2 passed, 0 failed") {
		t.Errorf("%v\n%s", err, out)
	}
	out, err = runHubtestCmd(t, "--hub", hubDir, "no-such-test")
	if err == nil || !strings.Contains(out, "FAIL  no-such-test") {
		t.Errorf("missing test: %v\n%s", err, out)
	}
	if _, err := runHubtestCmd(t, "--hub", hubDir); err == nil {
		t.Error("no test named: no error")
	}
}
