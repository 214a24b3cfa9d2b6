// Command lapibench measures the LAPI as a separate process, the way the
// issue's targets are stated: cscli decisions import of 1M values (into a
// LAPI with planner statistics, while cscli bouncers add runs), a 1M
// startup stream (time and the daemon's peak RSS growth), alert ingest in
// batches of 50 with profiles applied, and 500 bouncers pulling deltas;
// -only capi: a Central API community pull of 100k addresses reaching
// long-polling bouncers while alerts are pushed (issue 16). It only talks to loopback and bounds every load in count and time.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/loopback"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/lapi/apikey"
	"github.com/rampart-ips/rampart/lapi/store"
	"github.com/rampart-ips/rampart/models"
)

type env struct {
	dir, bin, cfg, url string
	profile            string // folder for CPU profiles, or ""
	launches           int
	cmd                *exec.Cmd
	db                 *benchDB
	peers              []*env // more LAPIs on the same database (server databases)
	owner              bool   // removes the folder and the database on stop
}

func main() {
	bin := flag.String("bin", "build/bin", "folder holding crowdsec and cscli")
	n := flag.Int("decisions", 1_000_000, "values imported and streamed")
	bouncers := flag.Int("bouncers", 500, "concurrent bouncers in the pull test")
	pullFor := flag.Duration("pull-for", 60*time.Second, "how long the bouncers pull")
	ingestFor := flag.Duration("ingest-for", 10*time.Second, "how long alerts are pushed")
	only := flag.String("only", "import,stream,ingest,pull", "which measurements to run (load: bench-load, capi: bench-capi)")
	capiN := flag.Int("capi-decisions", 100_000, "addresses in the Central API's community list (capi)")
	capiBouncers := flag.Int("capi-bouncers", 50, "bouncers long-polling while the community list is pulled (capi)")
	capiRate := flag.Float64("capi-rate", 100, "alerts per second pushed, in batches of 10, during the pull (capi)")
	capiTimeout := flag.Duration("capi-timeout", 3*time.Minute, "the capi measurement's bound, from the LAPI's start")
	capiSettle := flag.Duration("capi-settle", 20*time.Second, "how long the agent keeps pushing after the pull before the LAPI's settled RSS is read (capi)")
	loadRate := flag.Float64("load-rate", 5000, "alerts per second pushed during the load test")
	loadFor := flag.Duration("load-for", 60*time.Second, "how long the load test pushes alerts")
	loadBatch := flag.Int("load-batch", 50, "alerts per request in the load test")
	loadSample := flag.Int("load-sample", 100, "every how many alerts of the load test one is timed to the bouncers")
	loadMode := flag.String("load-mode", "follow", "how the load test's bouncers wait for changes, as Rampart's bouncer can: follow (one response carrying every change), longpoll (wait=30s), or both in turn (follow,longpoll)")
	dbs := flag.String("db", "sqlite", "databases to measure on, in turn: sqlite, postgresql, mysql (comma-separated)")
	lapis := flag.Int("lapis", 1, "LAPI processes sharing a server database for ingest and load (SQLite: always 1)")
	profile := flag.String("profile", "", "folder where every LAPI process writes a CPU and a heap profile of its run (crowdsec -cpuprofile, -memprofile) and its log")
	flag.Parse()
	o := opts{bin: *bin, n: *n, bouncers: *bouncers, pullFor: *pullFor, ingestFor: *ingestFor, loadRate: *loadRate, loadFor: *loadFor, lapis: *lapis,
		loadBatch: max(*loadBatch, 1), loadSample: max(*loadSample, 1),
		capiN: *capiN, capiBouncers: max(*capiBouncers, 1), capiRate: *capiRate, capiTimeout: *capiTimeout, capiSettle: *capiSettle}
	for _, m := range strings.Split(*loadMode, ",") {
		if m != "follow" && m != "longpoll" {
			fmt.Fprintf(os.Stderr, "-load-mode %q: use follow, longpoll or both (follow,longpoll)\n", *loadMode)
			os.Exit(2)
		}
		o.loadModes = append(o.loadModes, m)
	}
	o.bin, _ = filepath.Abs(o.bin)
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "lapibench:", err)
			os.Exit(1)
		}
		o.profile, _ = filepath.Abs(*profile)
	}
	o.want = map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		o.want[w] = true
	}
	fmt.Printf("lapibench on %s, %d CPUs, load average %s\n", hostname(), numCPU(), loadavg())
	r := &report{}
	failed := false
	for _, kind := range strings.Split(*dbs, ",") {
		o.kind = strings.TrimSpace(kind)
		fmt.Printf("== %s\n", o.kind)
		if err := run(o, r); err != nil {
			fmt.Fprintf(os.Stderr, "lapibench on %s: %v\n", o.kind, err)
			r.add("error", o.kind, err.Error())
			failed = true
		}
	}
	r.print()
	if failed {
		os.Exit(1)
	}
}

// opts are the command's settings; kind is the database of this round.
type opts struct {
	bin, kind, profile          string
	n, bouncers, lapis          int
	loadRate                    float64
	loadBatch, loadSample       int
	loadModes                   []string
	pullFor, ingestFor, loadFor time.Duration
	want                        map[string]bool
	capiN, capiBouncers         int
	capiRate                    float64
	capiTimeout                 time.Duration
	capiSettle                  time.Duration
}

func run(o opts, r *report) error {
	want := o.want
	if want["import"] || want["stream"] || want["ingest"] {
		e, err := start(o.bin, o.kind, o.profile, 0)
		if err != nil {
			return err
		}
		defer e.stop()
		if want["import"] || want["stream"] {
			if err := benchImport(r, e, o.n); err != nil {
				return err
			}
		}
		if want["stream"] {
			// As autovacuum would after the import, and a fresh process,
			// so the import's heap does not hide the stream's.
			if e.db.kind != "sqlite" {
				if err := e.db.analyze(); err != nil {
					return err
				}
			}
			if err := e.restart(); err != nil {
				return err
			}
			if err := benchStream(r, e, o.n); err != nil {
				return err
			}
		}
		if want["ingest"] {
			if err := e.addPeers(o.lapis - 1); err != nil {
				return err
			}
			if err := benchIngest(r, e.all(), o.ingestFor); err != nil {
				return err
			}
		}
		e.stop()
	}
	if want["pull"] {
		e, err := start(o.bin, o.kind, o.profile, o.bouncers)
		if err != nil {
			return err
		}
		defer e.stop()
		if err := benchPull(e, o.bouncers, o.pullFor); err != nil {
			return err
		}
		e.stop()
	}
	if want["capi"] {
		if err := benchCAPI(r, o); err != nil {
			return err
		}
	}
	if want["load"] {
		// Each mode on LAPIs of its own, one after the other.
		for _, mode := range o.loadModes {
			e, err := start(o.bin, o.kind, o.profile, o.bouncers)
			if err != nil {
				return err
			}
			if err := e.addPeers(o.lapis - 1); err != nil {
				e.stop()
				return err
			}
			err = benchLoad(r, e.all(), mode, o.bouncers, o.loadRate, o.loadBatch, o.loadSample, o.loadFor)
			e.stop()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func hostname() string { h, _ := os.Hostname(); return h }

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

// start prepares a database of the kind, a config, a machine and
// nBouncers bouncers (keys written to bouncers.txt), then starts crowdsec
// -no-cs and waits for /health.
func start(bin, kind, profile string, nBouncers int) (*env, error) {
	e, err := prepare(bin, kind, profile, nBouncers)
	if err != nil {
		return nil, err
	}
	if err := e.launch(); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// prepare is start without the launch, for a measurement that adds to the
// configuration first.
func prepare(bin, kind, profile string, nBouncers int) (*env, error) {
	dir, err := os.MkdirTemp("", "lapibench-")
	if err != nil {
		return nil, err
	}
	bdb, err := newDB(kind, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{dir: dir, bin: bin, db: bdb, owner: true, profile: profile}
	if err := e.configure("config.toml", nBouncers); err != nil {
		e.stop()
		return nil, err
	}
	prof, err := os.ReadFile("config/profiles.toml")
	if err != nil {
		e.stop()
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles.toml"), prof, 0o600); err != nil {
		e.stop()
		return nil, err
	}
	if err := e.populate(nBouncers); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// configure writes this LAPI's configuration file, on a free port.
func (e *env) configure(name string, nBouncers int) error {
	addr, err := loopback.FreeAddr()
	if err != nil {
		return err
	}
	e.cfg, e.url = filepath.Join(e.dir, name), "http://"+addr+"/"
	conf := fmt.Sprintf(`[common]
log_level = "warning"
[db_config]
%s[api.client]
credentials_path = %q
[api.server]
listen_uri = %q
profiles_path = %q
allowlist_host_addresses = false
# every bench bouncer connects from loopback, and an HTTP client may
# open a second connection while its first is being handed back
max_connections_per_source = %d
max_connections = %d
`, e.db.toml(), filepath.Join(e.dir, "creds.toml"), addr, filepath.Join(e.dir, "profiles.toml"),
		2*nBouncers+csconfig.DefaultMaxConnectionsPerSource, 2*nBouncers+csconfig.DefaultMaxConnections)
	return os.WriteFile(e.cfg, []byte(conf), 0o600)
}

// populate creates the machine and the bouncers through the store.
func (e *env) populate(nBouncers int) error {
	ctx := context.Background()
	st, err := store.Open(ctx, e.db.storeConfig())
	if err != nil {
		return err
	}
	defer st.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("benchpassword"), bcrypt.DefaultCost)
	if err := st.CreateMachine(ctx, store.Machine{MachineID: "bench", PasswordHash: string(hash), IsValidated: true}, true); err != nil {
		return err
	}
	if err := csconfig.WriteCredentials(filepath.Join(e.dir, "creds.toml"), &csconfig.Credentials{URL: e.url, Login: "bench", Password: "benchpassword"}); err != nil {
		return err
	}
	var keys []string
	for i := 0; i < nBouncers; i++ {
		k, _ := apikey.Generate()
		if _, err := st.CreateBouncer(ctx, store.Bouncer{Name: fmt.Sprintf("b%d", i), APIKeyHash: apikey.Hash(k)}); err != nil {
			return err
		}
		keys = append(keys, k)
	}
	return os.WriteFile(filepath.Join(e.dir, "bouncers.txt"), []byte(strings.Join(keys, "\n")), 0o600)
}

// addPeers starts n more LAPIs on the same server database (none on
// SQLite, which one LAPI owns).
func (e *env) addPeers(n int) error {
	if e.db.kind == "sqlite" {
		return nil
	}
	for i := len(e.peers); i < n; i++ {
		p := &env{dir: e.dir, bin: e.bin, db: e.db, profile: e.profile}
		if err := p.configure(fmt.Sprintf("config-%d.toml", i+2), len(e.keys())); err != nil {
			return err
		}
		if err := p.launch(); err != nil {
			return err
		}
		e.peers = append(e.peers, p)
	}
	return nil
}

// all is this LAPI and its peers, this one first.
func (e *env) all() []*env { return append([]*env{e}, e.peers...) }

func (e *env) launch() error {
	logf, _ := os.OpenFile(e.cfg+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	args := []string{"-c", e.cfg, "-no-cs"}
	if e.profile != "" {
		e.launches++
		name := filepath.Join(e.profile, fmt.Sprintf("%s-%s-%d", e.db.kind, strings.TrimSuffix(filepath.Base(e.cfg), ".toml"), e.launches))
		args = append(args, "-cpuprofile", name+".prof", "-memprofile", name+".heap")
	}
	e.cmd = exec.Command(filepath.Join(e.bin, "crowdsec"), args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		return err
	}
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(e.url + "health"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("crowdsec did not come up; see %s.log", e.cfg)
}

func (e *env) halt() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Signal(os.Interrupt)
		e.cmd.Wait()
		e.cmd = nil
	}
}

func (e *env) restart() error {
	e.halt()
	return e.launch()
}

// stop halts the LAPIs; the owner removes the folder and the database.
func (e *env) stop() {
	for _, p := range e.peers {
		p.halt()
	}
	e.peers = nil
	e.halt()
	if e.profile != "" {
		// The log goes with the profiles: it tells what the run did.
		if data, err := os.ReadFile(e.cfg + ".log"); err == nil {
			_ = os.WriteFile(filepath.Join(e.profile, fmt.Sprintf("%s-%s.log", e.db.kind, filepath.Base(e.cfg))), data, 0o600)
		}
	}
	if e.owner {
		e.db.drop()
		os.RemoveAll(e.dir)
	}
}

// cpu is the LAPIs' CPU time so far.
func cpu(es []*env) time.Duration {
	var t time.Duration
	for _, e := range es {
		if e.cmd != nil && e.cmd.Process != nil {
			t += procstat.CPU(e.cmd.Process.Pid)
		}
	}
	return t
}

func (e *env) keys() []string {
	data, _ := os.ReadFile(filepath.Join(e.dir, "bouncers.txt"))
	return strings.Split(string(data), "\n")
}

// benchImport imports n values the way an operator does, into a LAPI that
// has planner statistics as any LAPI does after a restart (a fresh database
// has none, and plans that are fine without them went quadratic with them),
// while another operator adds bouncers every second.
func benchImport(r *report, e *env, n int) error {
	if err := e.withStatistics(); err != nil {
		return err
	}
	path := filepath.Join(e.dir, "values.txt")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "%d.%d.%d.%d\n", 11+i>>24&127, i>>16&255, i>>8&255, i&255)
	}
	w.Flush()
	f.Close()
	idle := e.bouncersAdd("idle-probe")
	probes := make(chan []probe, 1)
	stop := make(chan struct{})
	go func() { probes <- e.probeBouncersAdd(stop) }()
	start := time.Now()
	cpu0, db0 := cpu(e.all()), e.db.serverCPU()
	cmd := exec.Command(filepath.Join(e.bin, "cscli"), "-c", e.cfg, "decisions", "import", "-i", path, "--format", "values")
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	lapiCPU, dbCPU := cpu(e.all())-cpu0, e.db.serverCPU()-db0
	close(stop)
	waits := <-probes
	var longest time.Duration
	failed := 0
	for _, p := range waits {
		longest = max(longest, p.took)
		if p.err != nil {
			failed++
		}
	}
	if err == nil {
		cliCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		fmt.Printf("cscli decisions import of %d values (planner statistics present): %.2f s, cscli %.1f CPU-s, LAPI %.1f CPU-s, %s(target <= 20 s)\n%s",
			n, took.Seconds(), cliCPU.Seconds(), lapiCPU.Seconds(), serverCPU(e.db, dbCPU), lastLines(out, 4))
		r.add(fmt.Sprintf("cscli decisions import %d values (<= 20 s)", n), e.db.kind,
			fmt.Sprintf("%.2f s (cscli %.1f CPU-s)", took.Seconds(), cliCPU.Seconds()))
	}
	fmt.Printf("cscli bouncers add during the import: %d runs, %d failed, longest %.2f s (%.2f s on the idle LAPI before)\n",
		len(waits), failed, longest.Seconds(), idle.took.Seconds())
	if err != nil {
		return fmt.Errorf("cscli decisions import of %d values failed after %.2f s: %v: %s", n, took.Seconds(), err, out)
	}
	if failed > 0 {
		return fmt.Errorf("%d cscli bouncers add runs failed during the import", failed)
	}
	return nil
}

// withStatistics gives the LAPI's database a little history and restarts
// the LAPI, whose PRAGMA optimize at start then writes sqlite_stat1 for the
// decisions table (checked); a server database is analyzed, as autovacuum
// would.
func (e *env) withStatistics() error {
	for i := 0; i < 10; i++ {
		cmd := exec.Command(filepath.Join(e.bin, "cscli"), "-c", e.cfg, "decisions", "add", "-i", fmt.Sprintf("198.51.100.%d", i), "-d", "4h")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("cscli decisions add: %v: %s", err, out)
		}
	}
	if err := e.restart(); err != nil {
		return err
	}
	return e.db.analyze()
}

// probeBouncersAdd runs cscli bouncers add from 100 ms on, every 500 ms,
// until stop closes and returns how long each run took: every writer waits
// for the import's transactions, so this is what an operator waits.
func (e *env) probeBouncersAdd(stop <-chan struct{}) []probe {
	var waits []probe
	pause := 100 * time.Millisecond
	for i := 0; ; i++ {
		select {
		case <-stop:
			return waits
		case <-time.After(pause):
		}
		pause = 500 * time.Millisecond
		waits = append(waits, e.bouncersAdd(fmt.Sprintf("import-probe-%d", i)))
	}
}

// probe is one timed cscli run.
type probe struct {
	took time.Duration
	err  error
}

// bouncersAdd runs cscli bouncers add and times it.
func (e *env) bouncersAdd(name string) probe {
	start := time.Now()
	cmd := exec.Command(filepath.Join(e.bin, "cscli"), "-c", e.cfg, "bouncers", "add", name, "-o", "raw")
	out, err := cmd.CombinedOutput()
	p := probe{took: time.Since(start)}
	if err != nil {
		p.err = fmt.Errorf("%w: %s", err, lastLines(out, 1))
		fmt.Fprintf(os.Stderr, "cscli bouncers add failed after %.2f s: %v", p.took.Seconds(), p.err)
	}
	return p
}

func benchStream(r *report, e *env, n int) error {
	keys := e.keys()
	if len(keys) == 0 || keys[0] == "" {
		st, err := store.Open(context.Background(), e.db.storeConfig())
		if err != nil {
			return err
		}
		k, _ := apikey.Generate()
		_, err = st.CreateBouncer(context.Background(), store.Bouncer{Name: "stream-bench", APIKeyHash: apikey.Hash(k)})
		st.Close()
		if err != nil {
			return err
		}
		keys = []string{k}
	}
	pid := e.cmd.Process.Pid
	runtimeGC := func() { time.Sleep(500 * time.Millisecond) }
	runtimeGC()
	// Reset the peak so VmHWM measures this request only.
	_ = procstat.ResetPeak(pid)
	before := procstat.KB(pid, "VmRSS")
	cpu0 := procstat.CPU(pid)
	start := time.Now()
	req, _ := http.NewRequest("GET", e.url+"v1/decisions/stream?startup=true&additional_pull=false&community_pull=false", nil)
	req.Header.Set("X-Api-Key", keys[0])
	req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	cw := &countWriter{}
	_, err = io.Copy(cw, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return err
	}
	peak := procstat.KB(pid, "VmHWM")
	lapiCPU := procstat.CPU(pid) - cpu0
	fmt.Printf("stream startup of %d decisions: %.2f s, LAPI %.2f CPU-s, body %.1f MB (%d entries), LAPI RSS %.1f MB before, peak %.1f MB, growth %.1f MB (target <= 2 s and <= 100 MB)\n",
		n, took.Seconds(), lapiCPU.Seconds(), float64(cw.n)/1e6, cw.entries, float64(before)/1024, float64(peak)/1024, float64(peak-before)/1024)
	r.add(fmt.Sprintf("stream startup %d decisions (<= 2 s)", n), e.db.kind, fmt.Sprintf("%.2f s (LAPI %.2f CPU-s)", took.Seconds(), lapiCPU.Seconds()))
	r.add("  its LAPI RSS growth (<= 100 MB)", e.db.kind, fmt.Sprintf("%.1f MB", float64(peak-before)/1024))
	if cw.entries < n {
		return fmt.Errorf("stream carried %d entries, want %d", cw.entries, n)
	}
	return nil
}

// countWriter counts body bytes and decisions, including markers split
// across writes.
type countWriter struct {
	n       int64
	entries int
	tail    []byte
}

var marker = []byte(`"duration":`)

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	joined := append(c.tail, p...)
	c.entries += bytes.Count(joined, marker)
	keep := min(len(joined), len(marker)-1)
	c.tail = append(c.tail[:0], joined[len(joined)-keep:]...)
	return len(p), nil
}

// login logs the bench machine in without declaring scenarios.
func login(url string) (string, error) { return loginScenarios(url, nil) }

// benchIngest pushes alerts from 4 agents spread over the LAPIs es.
func benchIngest(r *report, es []*env, d time.Duration) error {
	tokens := make([]string, len(es))
	for i, e := range es {
		var err error
		if tokens[i], err = login(e.url); err != nil {
			return err
		}
	}
	const workers, batch = 4, 50
	cpu0, db0 := cpu(es), es[0].db.serverCPU()
	var total, failures atomic.Int64
	var seq atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(url, token string) {
			defer wg.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			for time.Now().Before(deadline) {
				alerts := make([]*models.Alert, batch)
				now := time.Now().UTC().Format(time.RFC3339Nano)
				for i := range alerts {
					k := seq.Add(1)
					ip := fmt.Sprintf("172.%d.%d.%d", 16+k>>16&15, k>>8&255, k&255)
					alerts[i] = &models.Alert{Scenario: "crowdsecurity/ssh-bf", ScenarioHash: "h", ScenarioVersion: "0.1",
						Message: "Ip " + ip + " performed crowdsecurity/ssh-bf", EventsCount: 6, StartAt: now, StopAt: now, Capacity: 5,
						Leakspeed: "10s", Remediation: true, Kind: "crowdsec", Source: &models.Source{Scope: "Ip", Value: ip, IP: ip},
						Events: []*models.Event{{Timestamp: now, Meta: []models.Meta{{Key: "source_ip", Value: ip}, {Key: "service", Value: "ssh"}}}},
						Meta:   []models.Meta{{Key: "service", Value: "ssh"}}}
				}
				data, _ := json.Marshal(alerts)
				req, _ := http.NewRequest("POST", url+"v1/alerts", bytes.NewReader(data))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 201 {
					failures.Add(1)
					if resp != nil {
						resp.Body.Close()
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				total.Add(batch)
			}
		}(es[w%len(es)].url, tokens[w%len(es)])
	}
	wg.Wait()
	took := time.Since(start)
	lapiCPU, dbCPU := cpu(es)-cpu0, es[0].db.serverCPU()-db0
	fmt.Printf("alert ingest (batches of %d, %d clients over %d LAPIs, profiles applied, on top of the imported set): %.0f alerts/s over %.1f s, LAPIs %.1f CPU-s, %s%d failed requests (target >= 5000 alerts/s)\n",
		batch, workers, len(es), float64(total.Load())/took.Seconds(), took.Seconds(), lapiCPU.Seconds(), serverCPU(es[0].db, dbCPU), failures.Load())
	r.add("alert ingest (>= 5000/s, 0 errors)", es[0].db.kind, fmt.Sprintf("%.0f/s, %d err, %d LAPI(s), %.1f CPU-s/10k",
		float64(total.Load())/took.Seconds(), failures.Load(), len(es), lapiCPU.Seconds()*10000/float64(max(total.Load(), 1))))
	if failures.Load() > 0 {
		return fmt.Errorf("%d ingest requests failed", failures.Load())
	}
	return nil
}

func benchPull(e *env, n int, d time.Duration) error {
	keys := e.keys()
	token, err := login(e.url)
	if err != nil {
		return err
	}
	transport := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: 0}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	pull := func(key string, startup bool) (time.Duration, error) {
		u := e.url + "v1/decisions/stream?additional_pull=false&community_pull=false"
		if startup {
			u += "&startup=true"
		}
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("X-Api-Key", key)
		req.Header.Set("User-Agent", "crowdsec-firewall-bouncer/v0.0.31")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		var sr models.StreamResponse
		err = json.NewDecoder(resp.Body).Decode(&sr)
		resp.Body.Close()
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t0), err
	}
	// A background writer adds a decision every 100 ms so deltas carry data.
	stopWriter := make(chan struct{})
	var writes atomic.Int64
	go func() {
		hc := &http.Client{Timeout: 10 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(100 * time.Millisecond):
			}
			a := []*models.Alert{{Scenario: "crowdsecurity/ssh-bf", Message: "m", EventsCount: 1, Leakspeed: "10s", Remediation: true,
				StartAt: time.Now().UTC().Format(time.RFC3339), StopAt: time.Now().UTC().Format(time.RFC3339), Events: []*models.Event{},
				Source: &models.Source{Scope: "Ip", Value: fmt.Sprintf("100.64.%d.%d", i>>8&255, i&255)}}}
			data, _ := json.Marshal(a)
			req, _ := http.NewRequest("POST", e.url+"v1/alerts", bytes.NewReader(data))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("User-Agent", "crowdsec/v1.7.8-bench-linux")
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				writes.Add(1)
			}
		}
	}()
	var mu sync.Mutex
	var lat []time.Duration
	var errs atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(key string, offset time.Duration) {
			defer wg.Done()
			if _, err := pull(key, true); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			time.Sleep(offset)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				l, err := pull(key, false)
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					mu.Lock()
					lat = append(lat, l)
					mu.Unlock()
				}
				<-tick.C
			}
		}(keys[i], time.Duration(i)*time.Second/time.Duration(n))
	}
	wg.Wait()
	close(stopWriter)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	fmt.Printf("%d bouncers pulling deltas every 1 s for %s (a decision added every 100 ms, %d added): %d pulls, %d errors, p50 %s, p99 %s, max %s\n",
		n, d, writes.Load(), len(lat), errs.Load(), pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	if errs.Load() > 0 {
		return fmt.Errorf("%d pulls failed (first: %v)", errs.Load(), firstErr.Load())
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  cscli: " + strings.Join(lines, "\n  cscli: ") + "\n"
}

// serverCPU words a database server's CPU figure, if there is one.
func serverCPU(db *benchDB, t time.Duration) string {
	if db.kind != "postgresql" {
		return ""
	}
	return fmt.Sprintf("PostgreSQL backends %.1f CPU-s, ", t.Seconds())
}
