package cscli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
)

// TestDecisionsAddProtected: loopback, link-local and ranges covering
// them cannot be banned, --bypass-allowlist or not (it skips user
// allowlists only); the error says why and nothing reaches the stream.
func TestDecisionsAddProtected(t *testing.T) {
	env := startLAPI(t)
	key, err := apikey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.st.CreateBouncer(context.Background(), store.Bouncer{Name: "fw", APIKeyHash: apikey.Hash(key)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-r", "0.0.0.0/0", "--bypass-allowlist"}, "decision on 0.0.0.0/0 refused: it covers 127.0.0.0/8 (loopback)"},
		{[]string{"-i", "127.0.0.1", "--bypass-allowlist"}, "decision on 127.0.0.1 refused: it is in 127.0.0.0/8 (loopback)"},
		{[]string{"-r", "::/0", "-B"}, "decision on ::/0 refused: it covers ::1/128 (loopback)"},
		{[]string{"-r", "fe80::/10", "-B"}, "decision on fe80::/10 refused: it is in fe80::/10 (link-local)"},
		{[]string{"-r", "fe80::/10"}, "fe80::/10 is protected by item fe80::/10 from rampart-host"},
		{[]string{"-i", "127.0.0.1"}, "127.0.0.1 is protected by item 127.0.0.0/8 from rampart-host"},
		{[]string{"--scope", "range", "-v", "169.254.0.0/16", "-B"}, "(link-local)"},
	} {
		_, _, err := env.run(t, nil, append([]string{"decisions", "add"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--bypass-allowlist skips user allowlists only") {
			t.Errorf("add %v: error %v, want %q", tc.args, err, tc.want)
		}
	}
	if got := env.alertsJSON(t, "alerts", "list"); len(got) != 0 {
		t.Errorf("refused decisions were stored: %d alerts", len(got))
	}
	req, err := http.NewRequest("GET", env.url+"v1/decisions/stream?startup=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"new": [], "deleted": []}` {
		t.Errorf("stream: %d %s", resp.StatusCode, body)
	}
}
