package exprhelpers

import (
	"testing"

	"github.com/expr-lang/expr"
)

// TestMatchesOperator checks that `matches` goes through the cached helper,
// with constant and data-file patterns, and that a bad pattern is false.
func TestMatchesOperator(t *testing.T) {
	h := New(t.TempDir())
	env := map[string]any{"s": "GET /wp-login.php", "pats": []string{`wp-.*\.php$`, `(`}}
	for src, want := range map[string]bool{
		`s matches "login"`:              true,
		`s matches "^POST"`:              false,
		`any(pats, {s matches #})`:       true,
		`all(pats, {not (s matches #)})`: false,
		`"x" matches "("`:                false,
	} {
		prog, err := expr.Compile(src, append(h.Options(), expr.Env(env))...)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		out, err := expr.Run(prog, env)
		if err != nil || out != want {
			t.Errorf("%s = %v (%v), want %v", src, out, err, want)
		}
	}
	if h.matchReSize.Load() == 0 {
		t.Error("the matches operator did not go through the cache")
	}
}
