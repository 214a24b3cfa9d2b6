// Command fwbench measures the firewall bouncer as a separate process in a
// network namespace it creates (never the host's firewall): cold start with
// N bans (time until all are in the kernel, peak RSS), a 1k+1k delta on the
// loaded set, and LAPI-to-kernel latency with the long-poll stream, each
// beside a floor measured in the same run (a plain google/nftables batch
// load of the same elements).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/internal/nstest"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

func main() {
	bin := flag.String("bin", "build/bin", "folder with crowdsec and crowdsec-firewall-bouncer")
	sizes := flag.String("n", "100000,1000000", "ban counts for the cold start")
	mode := flag.String("mode", "nftables", "bouncer mode")
	latN := flag.Int("latency", 200, "decisions for the latency measurement")
	idle := flag.Duration("idle", 0, "after each cold start, measure the bouncer's RSS again after this long idle (polling a quiet LAPI)")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fwbench needs root (it creates network namespaces)")
		os.Exit(1)
	}
	binAbs, _ := filepath.Abs(*bin)
	fmt.Printf("fwbench: %s mode, %d CPUs\n", *mode, runtime.NumCPU())
	for _, s := range strings.Split(*sizes, ",") {
		n, _ := strconv.Atoi(s)
		if err := coldAndDelta(binAbs, *mode, n, *idle); err != nil {
			fmt.Fprintln(os.Stderr, "fwbench:", err)
			os.Exit(1)
		}
	}
	if *latN > 0 {
		if err := latency(binAbs, *mode, *latN); err != nil {
			fmt.Fprintln(os.Stderr, "fwbench:", err)
			os.Exit(1)
		}
	}
}

type env struct {
	ns, dir, bin, key, cfg string
	lapi, bouncer          *exec.Cmd
	client                 *http.Client
}

func setup(bin string, n int, extra func(st *store.Store) error) (*env, error) {
	e := &env{ns: fmt.Sprintf("rfwb-%d", os.Getpid()), bin: bin}
	var err error
	if e.dir, err = os.MkdirTemp("", "fwbench-"); err != nil {
		return nil, err
	}
	_ = exec.Command("ip", "netns", "del", e.ns).Run()
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v %s", err, out)
	}
	_ = exec.Command("ip", "-n", e.ns, "link", "set", "lo", "up").Run()
	e.cfg = filepath.Join(e.dir, "config.toml")
	conf := fmt.Sprintf("[common]\nlog_level = \"warning\"\n[db_config]\ndb_path = %q\n[api.server]\nlisten_uri = \"127.0.0.1:8080\"\nprofiles_path = %q\n",
		filepath.Join(e.dir, "crowdsec.db"), filepath.Join(e.dir, "profiles.toml"))
	if err := os.WriteFile(e.cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	prof, err := os.ReadFile("config/profiles.toml")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	_ = os.WriteFile(filepath.Join(e.dir, "profiles.toml"), prof, 0o600)
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(e.dir, "crowdsec.db")})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("benchpassword"), bcrypt.MinCost)
	if err := st.CreateMachine(ctx, store.Machine{MachineID: "bench", PasswordHash: string(hash), IsValidated: true}, true); err != nil {
		return nil, err
	}
	e.key, _ = apikey.Generate()
	if _, err := st.CreateBouncer(ctx, store.Bouncer{Name: "fw", APIKeyHash: apikey.Hash(e.key)}); err != nil {
		return nil, err
	}
	if err := fill(st, n, "bench", 0); err != nil {
		return nil, err
	}
	if extra != nil {
		if err := extra(st); err != nil {
			return nil, err
		}
	}
	e.lapi = exec.Command("ip", "netns", "exec", e.ns, filepath.Join(bin, "crowdsec"), "-c", e.cfg, "-no-cs")
	lf, _ := os.Create(filepath.Join(e.dir, "crowdsec.log"))
	e.lapi.Stdout, e.lapi.Stderr = lf, lf
	if err := e.lapi.Start(); err != nil {
		return nil, err
	}
	e.client = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := nstest.In(e.ns, func() error {
			var err error
			c, err = net.DialTimeout("tcp", addr, 5*time.Second)
			return err
		})
		return c, err
	}}}
	for i := 0; i < 100; i++ {
		if resp, err := e.client.Get("http://127.0.0.1:8080/health"); err == nil {
			resp.Body.Close()
			return e, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("LAPI did not start")
}

// fill stores n IPv4 bans from base upwards with the given scenario.
func fill(st *store.Store, n int, scenario string, base int) error {
	now := time.Now()
	for start := 0; start < n; start += 50_000 {
		end := min(start+50_000, n)
		ds := make([]store.NewDecision, 0, end-start)
		for i := start; i < end; i++ {
			j := base + i
			v := fmt.Sprintf("%d.%d.%d.%d", 11+j>>24, j>>16&255, j>>8&255, j&255)
			r, _ := store.ParseRange(v)
			ds = append(ds, store.NewDecision{UUID: fmt.Sprintf("u-%s-%d", scenario, j), Until: now.Add(4 * time.Hour), Scenario: scenario,
				Type: "ban", Scope: "Ip", Value: v, Origin: "cscli-import", Range: r})
		}
		a := &models.Alert{Scenario: scenario, Source: &models.Source{Scope: "cscli-import", Value: scenario}}
		if _, err := st.CreateAlerts(context.Background(), []store.NewAlert{{Alert: a, UUID: fmt.Sprintf("bench-%s-%d-%d", scenario, base, start), StartAt: now, StopAt: now, Decisions: ds}}); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) startBouncer(mode string, longPoll bool) (time.Time, error) {
	conf := fmt.Sprintf("mode = %q\napi_url = \"http://127.0.0.1:8080/\"\napi_key = %q\nupdate_frequency = \"2s\"\nlong_poll = %v\nlog_level = \"info\"\n", mode, e.key, longPoll)
	path := filepath.Join(e.dir, "bouncer.toml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return time.Time{}, err
	}
	e.bouncer = exec.Command("ip", "netns", "exec", e.ns, filepath.Join(e.bin, "crowdsec-firewall-bouncer"), "-c", path)
	lf, _ := os.Create(filepath.Join(e.dir, "bouncer.log"))
	e.bouncer.Stdout, e.bouncer.Stderr = lf, lf
	start := time.Now()
	return start, e.bouncer.Start()
}

func (e *env) bouncerLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "bouncer.log"))
	return string(b)
}

// waitLog waits for a log line matching re and returns it.
func (e *env) waitLog(re *regexp.Regexp, count int, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindAllString(e.bouncerLog(), -1); len(m) >= count {
			return m, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil, fmt.Errorf("timed out waiting for %q; bouncer log (%s):\n%s", re, filepath.Join(e.dir, "bouncer.log"), tail(e.bouncerLog()))
}

func tail(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}

func (e *env) close() {
	for _, c := range []*exec.Cmd{e.bouncer, e.lapi} {
		if c != nil && c.Process != nil {
			_ = c.Process.Signal(os.Interrupt)
			_ = c.Wait()
		}
	}
	_ = exec.Command("ip", "netns", "del", e.ns).Run()
	if os.Getenv("FWBENCH_KEEP") == "" {
		os.RemoveAll(e.dir)
	}
}

var syncRe = regexp.MustCompile(`first sync in the kernel.*elements=(\d+)`)
var appliedRe = regexp.MustCompile(`decisions applied.*added=(\d+).*deleted=(\d+).*took=(\S+)`)

func coldAndDelta(bin, mode string, n int, idle time.Duration) error {
	e, err := setup(bin, n, func(st *store.Store) error { return fill(st, 1000, "bench-old", 50_000_000) })
	if os.Getenv("FWBENCH_KEEP") != "" {
		fmt.Println("work dir", e.dir)
	}
	if err != nil {
		return err
	}
	defer e.close()
	start, err := e.startBouncer(mode, false)
	if err != nil {
		return err
	}
	lines, err := e.waitLog(syncRe, 1, 5*time.Minute)
	if err != nil {
		return err
	}
	took := time.Since(start)
	peak := procstat.KB(e.bouncer.Process.Pid, "VmHWM")
	floor, err := floorLoad(n+1000, mode)
	if err != nil {
		return err
	}
	fmt.Printf("cold start, %d IPv4 bans (+1k), Rampart LAPI on SQLite: %.2f s until all in the kernel (%s), bouncer peak RSS %.1f MB; floor (%s of the same elements): %.2f s\n",
		n, took.Seconds(), lines[0][strings.Index(lines[0], "elements="):], float64(peak)/1024, floorName(mode), floor.Seconds())
	if idle > 0 {
		pid := e.bouncer.Process.Pid
		loaded := procstat.KB(pid, "VmRSS")
		time.Sleep(idle)
		fmt.Printf("idle bouncer at %d bans: RSS %.1f MB after the load, %.1f MB after %s of polling a quiet LAPI\n",
			n, float64(loaded)/1024, float64(procstat.KB(pid, "VmRSS"))/1024, idle)
	}
	if err := scriptedCold(e, mode, n); err != nil {
		return err
	}

	// delta: 1k added and the 1k bench-old deleted, between two polls
	time.Sleep(2500 * time.Millisecond) // let the first delta poll pass
	if err := e.delta(); err != nil {
		return err
	}
	m, err := e.waitLog(appliedRe, 1, 30*time.Second)
	if err != nil {
		return err
	}
	var total time.Duration
	var added, deleted int
	for _, l := range m {
		s := appliedRe.FindStringSubmatch(l)
		a, _ := strconv.Atoi(s[1])
		d, _ := strconv.Atoi(s[2])
		t, _ := time.ParseDuration(s[3])
		added, deleted, total = added+a, deleted+d, total+t
	}
	if added+deleted < 2000 {
		if m2, err := e.waitLog(appliedRe, 2, 10*time.Second); err == nil {
			added, deleted, total = 0, 0, 0
			for _, l := range m2 {
				s := appliedRe.FindStringSubmatch(l)
				a, _ := strconv.Atoi(s[1])
				d, _ := strconv.Atoi(s[2])
				t, _ := time.ParseDuration(s[3])
				added, deleted, total = added+a, deleted+d, total+t
			}
		}
	}
	fmt.Printf("delta on a %d set: %d added + %d deleted applied in %s after the response arrived (%d apply calls)\n", n+1000, added, deleted, total, len(m))
	return nil
}

// delta posts 1k new decisions and deletes the 1k bench-old ones.
func (e *env) delta() error {
	tok, err := e.login()
	if err != nil {
		return err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	var ds []*models.Decision
	for i := 0; i < 1000; i++ {
		v := fmt.Sprintf("198.18.%d.%d", i>>8, i&255)
		ds = append(ds, &models.Decision{Duration: "4h", Origin: "cscli", Scenario: "bench-new", Scope: "Ip", Type: "ban", Value: v})
	}
	a := []*models.Alert{{Scenario: "bench-new", Message: "m", EventsCount: 1, Leakspeed: "0", StartAt: now, StopAt: now, Remediation: true,
		Kind: "cscli", Events: []*models.Event{}, Source: &models.Source{Scope: "Ip", Value: "198.18.0.0"}, Decisions: ds}}
	if err := e.call("POST", "/v1/alerts", tok, a); err != nil {
		return err
	}
	return e.call("DELETE", "/v1/decisions?scenario=bench-old", tok, nil)
}

func (e *env) login() (string, error) {
	body, _ := json.Marshal(map[string]string{"machine_id": "bench", "password": "benchpassword"})
	req, _ := http.NewRequest("POST", "http://127.0.0.1:8080/v1/watchers/login", bytes.NewReader(body))
	req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
	resp, err := e.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var r models.WatcherAuthResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return "", err
	}
	return r.Token, nil
}

func (e *env) call(method, path, tok string, body any) error {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, "http://127.0.0.1:8080"+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %d", method, path, resp.StatusCode)
	}
	return nil
}

// latency adds decisions one at a time and times each until the kernel
// reports the element (nftables monitor events).
func latency(bin, mode string, n int) error {
	if mode != "nftables" {
		return nil
	}
	e, err := setup(bin, 0, nil)
	if err != nil {
		return err
	}
	defer e.close()
	if _, err := e.startBouncer(mode, true); err != nil {
		return err
	}
	if _, err := e.waitLog(syncRe, 1, time.Minute); err != nil {
		return err
	}
	tok, err := e.login()
	if err != nil {
		return err
	}
	events := make(chan netip.Addr, 1024)
	stopMon, err := monitor(e.ns, events)
	if err != nil {
		return err
	}
	defer stopMon()
	var lat []time.Duration
	for i := 0; i < n; i++ {
		v := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
		now := time.Now().UTC().Format(time.RFC3339)
		a := []*models.Alert{{Scenario: "lat", Message: "m", EventsCount: 1, Leakspeed: "0", StartAt: now, StopAt: now, Remediation: true,
			Kind: "cscli", Events: []*models.Event{}, Source: &models.Source{Scope: "Ip", Value: v.String()},
			Decisions: []*models.Decision{{Duration: "1h", Origin: "cscli", Scenario: "lat", Scope: "Ip", Type: "ban", Value: v.String()}}}}
		if err := e.call("POST", "/v1/alerts", tok, a); err != nil {
			return err
		}
		created := time.Now()
		deadline := time.After(5 * time.Second)
	wait:
		for {
			select {
			case got := <-events:
				if got == v {
					lat = append(lat, time.Since(created))
					break wait
				}
			case <-deadline:
				return fmt.Errorf("element %s never reached the kernel", v)
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration {
		return lat[min(len(lat)-1, int(float64(len(lat))*q))].Round(10 * time.Microsecond)
	}
	fmt.Printf("LAPI decision created -> element in the kernel set (long-poll), %d decisions: p50 %s, p99 %s, max %s (target p99 <= 50 ms)\n",
		len(lat), p(0.5), p(0.99), lat[len(lat)-1].Round(10*time.Microsecond))
	return nil
}

// monitor reports IPv4 set elements added in namespace ns.
func monitor(ns string, out chan<- netip.Addr) (func(), error) {
	var conn *nftables.Conn
	var h netns.NsHandle
	err := nstest.In(ns, func() error {
		var err error
		if h, err = netns.Get(); err != nil {
			return err
		}
		conn, err = nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(h)))
		return err
	})
	if err != nil {
		return nil, err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements), nftables.WithMonitorAction(nftables.MonitorActionNew))
	ch, err := conn.AddMonitor(mon)
	if err != nil {
		return nil, err
	}
	go func() {
		for ev := range ch {
			els, ok := ev.Data.([]nftables.SetElement)
			if !ok {
				continue
			}
			for _, el := range els {
				if a, ok := netip.AddrFromSlice(el.Key); ok && !el.IntervalEnd {
					select {
					case out <- a.Unmap():
					default:
					}
				}
			}
		}
	}()
	return func() { mon.Close(); conn.CloseLasting(); h.Close() }, nil
}

// floorLoad times a plain google/nftables load of n /32 elements into an
// interval+timeout set in a fresh namespace: the kernel floor.
func floorLoad(n int, mode string) (time.Duration, error) {
	if mode != "nftables" {
		return ipsetFloor(n)
	}
	name := fmt.Sprintf("rfwf-%d", os.Getpid())
	_ = exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	var took time.Duration
	err := nstest.In(name, func() error {
		h, err := netns.Get()
		if err != nil {
			return err
		}
		defer h.Close()
		bigBuf := func(nc *netlink.Conn) error {
			rc, err := nc.SyscallConn()
			if err != nil {
				return err
			}
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 64<<20)
			}); err != nil {
				return err
			}
			return serr
		}
		c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.WithSockOptions(bigBuf))
		if err != nil {
			return err
		}
		t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "floor"})
		// Single addresses go to a timeout hash set, as Rampart's layout
		// keeps them; 4000 elements per transaction, as upstream loads.
		s := &nftables.Set{Table: t, Name: "s", KeyType: nftables.TypeIPAddr, HasTimeout: true}
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
		els := make([]nftables.SetElement, 0, n)
		for i := 0; i < n; i++ {
			a := [4]byte{byte(11 + i>>24), byte(i >> 16), byte(i >> 8), byte(i)}
			els = append(els, nftables.SetElement{Key: a[:], Timeout: 4 * time.Hour})
		}
		start := time.Now()
		// Element lists stay under netlink's 64 KiB attribute limit.
		const perTx, perMsg = 4000, 2000
		for i := 0; i < len(els); i += perTx {
			for j := i; j < min(i+perTx, len(els)); j += perMsg {
				if err := c.SetAddElements(s, els[j:min(j+perMsg, i+perTx, len(els))]); err != nil {
					return err
				}
			}
			if err := c.Flush(); err != nil {
				return err
			}
		}
		took = time.Since(start)
		return nil
	})
	return took, err
}

// ipsetFloor times `ipset restore` of n /32 elements into a fresh hash:net
// set in a fresh namespace: the floor the iptables mode compares with.
func ipsetFloor(n int) (time.Duration, error) {
	name := fmt.Sprintf("rfwi-%d", os.Getpid())
	_ = exec.Command("ip", "netns", "del", name).Run()
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%v %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", name).Run()
	var b strings.Builder
	fmt.Fprintf(&b, "create floor hash:net family inet timeout 0 maxelem %d\n", 2*n)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "add floor %d.%d.%d.%d timeout 14400\n", 11+i>>24, i>>16&255, i>>8&255, i&255)
	}
	cmd := exec.Command("ip", "netns", "exec", name, "ipset", "restore")
	cmd.Stdin = strings.NewReader(b.String())
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("ipset restore: %v %s", err, out)
	}
	return time.Since(start), nil
}

func floorName(mode string) string {
	if mode == "nftables" {
		return "a plain google/nftables load into a timeout hash set, 4000 per transaction"
	}
	return "ipset restore"
}

// scriptedCold measures the cold start against a scripted LAPI serving a
// prebuilt body from memory, as the reference measured upstream's bouncer,
// in a second namespace so the first run's objects do not count.
func scriptedCold(parent *env, mode string, n int) error {
	var body bytes.Buffer
	body.WriteString(`{"new": [`)
	for i := 0; i < n; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"duration":"3h59m59s","id":%d,"origin":"cscli-import","scenario":"bench","scope":"Ip","type":"ban","uuid":"6f1c3e2a-0000-4000-8000-%012d","value":"%d.%d.%d.%d"}`,
			i+1, i, 11+i>>24, i>>16&255, i>>8&255, i&255)
	}
	body.WriteString(`], "deleted": []}`)
	e := &env{ns: fmt.Sprintf("rfws-%d", os.Getpid()), bin: parent.bin, key: "scripted"}
	var err error
	if e.dir, err = os.MkdirTemp("", "fwbench-s-"); err != nil {
		return err
	}
	defer e.close()
	_ = exec.Command("ip", "netns", "del", e.ns).Run()
	if out, err := exec.Command("ip", "netns", "add", e.ns).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v %s", err, out)
	}
	_ = exec.Command("ip", "-n", e.ns, "link", "set", "lo", "up").Run()
	var ln net.Listener
	if err := nstest.In(e.ns, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:8080")
		return err
	}); err != nil {
		return err
	}
	data := body.Bytes()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("startup") == "true" {
			_, _ = w.Write(data)
			return
		}
		_, _ = w.Write([]byte(`{"new": [], "deleted": []}`))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	start, err := e.startBouncer(mode, false)
	if err != nil {
		return err
	}
	if _, err := e.waitLog(syncRe, 1, 5*time.Minute); err != nil {
		return err
	}
	took := time.Since(start)
	peak := procstat.KB(e.bouncer.Process.Pid, "VmHWM")
	fmt.Printf("cold start, %d IPv4 bans, scripted LAPI serving a prebuilt %.0f MB body (as upstream was measured): %.2f s until all in the kernel, bouncer peak RSS %.1f MB\n",
		n, float64(len(data))/1e6, took.Seconds(), float64(peak)/1024)
	return nil
}
