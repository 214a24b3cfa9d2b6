package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/models"
)

// appliance is Rampart running in a defender namespace: the crowdsec daemon
// (LAPI), the firewall bouncer and a TCP service, with an attacker namespace
// on the other side of a veth pair.
type appliance struct {
	t       *testing.T
	ns      *nstest.Pair
	dir     string
	cfg     string
	key     string
	lapi    *exec.Cmd
	bouncer *exec.Cmd
	proxy   *lapiProxy
	port    int
	// bouncerEnv is added to the bouncer's environment (NOTIFY_SOCKET).
	bouncerEnv []string
}

func newAppliance(t *testing.T, subnet int) *appliance {
	t.Helper()
	nstest.Require(t, "nft", "iptables", "ipset")
	a := &appliance{t: t, ns: nstest.NewPair(t, subnet), dir: t.TempDir(), port: 8000}
	a.cfg = filepath.Join(a.dir, "config.toml")
	conf := fmt.Sprintf(`[common]
log_level = "info"
[db_config]
db_path = %q
[api.client]
credentials_path = %q
[api.server]
listen_uri = "127.0.0.1:8080"
profiles_path = %q
`, filepath.Join(a.dir, "crowdsec.db"), filepath.Join(a.dir, "creds.toml"), filepath.Join(a.dir, "profiles.toml"))
	must(t, os.WriteFile(a.cfg, []byte(conf), 0o600))
	prof, err := os.ReadFile("../config/profiles.toml")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(a.dir, "profiles.toml"), prof, 0o600))
	a.cscli("machines", "add", "e2e", "--auto", "--force")
	a.startLAPI()
	a.key = strings.TrimSpace(a.cscli("bouncers", "add", "fw", "-o", "raw"))
	a.ns.Listen(t, a.ns.Defender, fmt.Sprintf("[::]:%d", a.port))
	// The proxy sits between bouncer and LAPI so tests can make the LAPI
	// hang or fail; it passes through by default.
	a.proxy = newLAPIProxy(t, a.ns, "127.0.0.1:8080")
	t.Cleanup(func() {
		a.stopBouncer(syscall.SIGTERM)
		a.stopLAPI()
		// Remove what the bouncer left in the namespace (it is deleted anyway).
		_ = a.ns.Command(context.Background(), a.ns.Defender, filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", a.bouncerConfigPath(), "-flush").Run()
	})
	return a
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// cscli runs cscli inside the defender namespace and returns its stdout.
func (a *appliance) cscli(args ...string) string {
	a.t.Helper()
	cmd := a.ns.Command(context.Background(), a.ns.Defender, append([]string{filepath.Join(binDir, "cscli"), "-c", a.cfg, "--error"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		a.t.Fatalf("cscli %s: %v\n%s%s\nLAPI: %s", strings.Join(args, " "), err, out, stderr, a.lapiDump())
	}
	return string(out)
}

// lapiDump ends the LAPI with SIGQUIT, which makes Go print every
// goroutine's stack to its log, and returns the log's end: a cscli call
// that got no answer (CI saw one wait out its 2 minutes) shows where the
// LAPI was stuck.
func (a *appliance) lapiDump() string {
	if a.lapi == nil || a.lapi.Process == nil {
		return "(not running)"
	}
	cmd := a.lapi
	_ = cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	a.lapi = nil
	b, _ := os.ReadFile(filepath.Join(a.dir, "crowdsec.log"))
	if len(b) > 40000 {
		b = b[len(b)-40000:]
	}
	return string(b)
}

func (a *appliance) logFile(name string) *os.File {
	f, err := os.OpenFile(filepath.Join(a.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	must(a.t, err)
	return f
}

func (a *appliance) startLAPI() {
	a.t.Helper()
	a.lapi = a.ns.Command(context.Background(), a.ns.Defender, filepath.Join(binDir, "crowdsec"), "-c", a.cfg, "-no-cs")
	f := a.logFile("crowdsec")
	a.lapi.Stdout, a.lapi.Stderr = f, f
	must(a.t, a.lapi.Start())
	if !nstest.Eventually(10*time.Second, func() bool { return a.ns.Dial(a.ns.Defender, "127.0.0.1:8080", 200*time.Millisecond) == nil }) {
		a.t.Fatalf("LAPI did not start:\n%s", a.readLog("crowdsec"))
	}
}

func (a *appliance) stopLAPI() {
	if a.lapi != nil && a.lapi.Process != nil {
		_ = a.lapi.Process.Signal(syscall.SIGTERM)
		_ = a.lapi.Wait()
		a.lapi = nil
	}
}

func (a *appliance) readLog(name string) string {
	b, _ := os.ReadFile(filepath.Join(a.dir, name+".log"))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func (a *appliance) bouncerConfigPath() string { return filepath.Join(a.dir, "bouncer.toml") }

// writeBouncerConfig writes the bouncer TOML; extra lines are appended.
func (a *appliance) writeBouncerConfig(mode string, extra ...string) {
	a.t.Helper()
	conf := fmt.Sprintf("mode = %q\napi_url = %q\napi_key = %q\nupdate_frequency = \"1s\"\nrequest_timeout = \"3s\"\nlog_level = \"debug\"\n%s\n",
		mode, "http://"+a.proxy.addr+"/", a.key, strings.Join(extra, "\n"))
	must(a.t, os.WriteFile(a.bouncerConfigPath(), []byte(conf), 0o600))
}

func (a *appliance) startBouncer() {
	a.t.Helper()
	a.bouncer = a.ns.Command(context.Background(), a.ns.Defender, filepath.Join(binDir, "crowdsec-firewall-bouncer"), "-c", a.bouncerConfigPath())
	a.bouncer.Env = append(os.Environ(), a.bouncerEnv...)
	f := a.logFile("bouncer")
	a.bouncer.Stdout, a.bouncer.Stderr = f, f
	must(a.t, a.bouncer.Start())
}

// waitSynced waits until the bouncer logged its first sync.
func (a *appliance) waitSynced(n int) {
	a.t.Helper()
	if !nstest.Eventually(15*time.Second, func() bool { return strings.Count(a.readLogAll("bouncer"), "first sync in the kernel") >= n }) {
		a.t.Fatalf("bouncer never synced:\n%s", a.readLog("bouncer"))
	}
}

func (a *appliance) readLogAll(name string) string {
	b, _ := os.ReadFile(filepath.Join(a.dir, name+".log"))
	return string(b)
}

func (a *appliance) stopBouncer(sig syscall.Signal) {
	if a.bouncer != nil && a.bouncer.Process != nil {
		_ = a.bouncer.Process.Signal(sig)
		_ = a.bouncer.Wait()
		a.bouncer = nil
	}
}

// killBouncer sends SIGKILL to the bouncer itself (not only ip netns exec).
func (a *appliance) killBouncer() {
	a.t.Helper()
	// ip netns exec execs the command, so the pid is the bouncer's.
	a.stopBouncer(syscall.SIGKILL)
}

func (a *appliance) target(ip fmt.Stringer) string {
	return net.JoinHostPort(ip.String(), fmt.Sprint(a.port))
}

// reachable tries one connection from the attacker with the seed's 1 s timeout.
func (a *appliance) reachable(ip fmt.Stringer) bool {
	return a.ns.Dial(a.ns.Attacker, a.target(ip), time.Second) == nil
}

// waitBlocked waits until connections from the attacker fail and returns
// how long it took.
func (a *appliance) waitBlocked(ip fmt.Stringer, within time.Duration) time.Duration {
	a.t.Helper()
	start := time.Now()
	if !nstest.Eventually(within, func() bool { return a.ns.Dial(a.ns.Attacker, a.target(ip), 150*time.Millisecond) != nil }) {
		a.t.Fatalf("attacker still reaches %s after %s\nnft:\n%s\nbouncer log:\n%s", a.target(ip), within, a.ruleset(), a.readLog("bouncer"))
	}
	return time.Since(start)
}

func (a *appliance) waitOpen(ip fmt.Stringer, within time.Duration) {
	a.t.Helper()
	if !nstest.Eventually(within, func() bool { return a.ns.Dial(a.ns.Attacker, a.target(ip), 300*time.Millisecond) == nil }) {
		a.t.Fatalf("attacker still blocked from %s after %s\nbouncer log:\n%s", a.target(ip), within, a.readLog("bouncer"))
	}
}

func (a *appliance) ruleset() string {
	out, _ := a.ns.Command(context.Background(), a.ns.Defender, "nft", "list", "ruleset").CombinedOutput()
	return string(out)
}

func (a *appliance) iptablesRules(bin string) string {
	out, _ := a.ns.Command(context.Background(), a.ns.Defender, bin, "-S").CombinedOutput()
	return string(out)
}

// lapiProxy forwards to the LAPI and can be told to hang or fail.
type lapiProxy struct {
	addr    string
	mode    atomic.Value // "", "hang", "500"
	release atomic.Value // chan struct{}: closed when the mode changes
	// inject holds []*models.Decision added to every stream answer's new
	// and deleted lists, as a LAPI other than ours might send them.
	inject atomic.Value
}

func newLAPIProxy(t *testing.T, ns *nstest.Pair, upstream string) *lapiProxy {
	return newLAPIProxyIn(t, ns, ns.Defender, upstream)
}

// newLAPIProxyIn is newLAPIProxy listening on loopback in namespace listen,
// which may be another pair's: a bouncer there reaches the LAPI in ns's
// defender namespace as a client on its loopback.
func newLAPIProxyIn(t *testing.T, ns *nstest.Pair, listen, upstream string) *lapiProxy {
	ln := ns.ListenRaw(t, listen, "127.0.0.1:0")
	p := &lapiProxy{addr: ln.Addr().String()}
	p.mode.Store("")
	p.release.Store(make(chan struct{}))
	target, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	// The proxy's own outgoing connections must be made inside the
	// defender namespace: dial through a namespace-bound dialer.
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return ns.DialConn(ns.Defender, addr, 5*time.Second)
	}}
	rp.ModifyResponse = func(resp *http.Response) error {
		extra, _ := p.inject.Load().([]*models.Decision)
		if len(extra) == 0 || resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/v1/decisions/stream") {
			return nil
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
			// A follow response stays open: the values go into each line
			// as it passes, as a hostile LAPI would write them.
			resp.Body = injectLines(resp.Body, extra)
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var sr models.StreamResponse
		if err := json.Unmarshal(body, &sr); err != nil {
			return err
		}
		sr.New = append(sr.New, extra...)
		sr.Deleted = append(sr.Deleted, extra...)
		body, _ = json.Marshal(sr)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		resp.Header.Del("Content-Encoding")
		return nil
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p.mode.Load().(string) {
		case "hang":
			// Accept and never answer, like a wedged LAPI; when the test
			// ends the hang, reset the connection.
			select {
			case <-r.Context().Done():
			case <-p.release.Load().(chan struct{}):
			}
			panic(http.ErrAbortHandler)
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// injectLines adds extra to the new and deleted lists of every line of a
// follow response read from body.
func injectLines(body io.ReadCloser, extra []*models.Decision) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		defer body.Close()
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var fc models.FollowChunk
			if err := json.Unmarshal(sc.Bytes(), &fc); err != nil {
				pw.CloseWithError(err)
				return
			}
			fc.New = append(fc.New, extra...)
			fc.Deleted = append(fc.Deleted, extra...)
			line, _ := json.Marshal(fc)
			if _, err := pw.Write(append(line, '\n')); err != nil {
				return
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr
}

func (p *lapiProxy) set(mode string) {
	p.mode.Store(mode)
	old := p.release.Swap(make(chan struct{})).(chan struct{})
	close(old)
}
