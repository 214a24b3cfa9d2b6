// Command replaybench measures the daemon's real replay path against the
// in-process engine on the same logs: agentbench (internal/agentbench)
// generates the 1M-line sshd and nginx logs, keeps them and replays them
// in-process; then, for each log, a fresh LAPI (`crowdsec -no-cs` on a new
// SQLite file, a watcher added with `cscli machines add`) takes the alerts
// of `crowdsec -dsn file://LOG -type TYPE -no-api` run with the same rules
// (the log's collections and basic parsers from the same hub). It reports
// the replay's wall time, CPU time (user+sys) and peak RSS from the child's
// rusage, lines/s, the alerts the LAPI holds per scenario (cscli alerts
// list), and the ratios to agentbench's figures. Every measurement runs
// -runs times and the best (least wall) counts: the machine may be shared.
// Loopback only; every run is bounded by -timeout.
//
//	go run ./internal/replaybench -bin build/bin -agentbench build/bench/agentbench -hub ../shared/hub
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/internal/loopback"
	"github.com/rampart-ips/rampart/internal/procstat"
)

// figures mirrors agentbench's -json output for one log.
type figures struct {
	Log         string         `json:"log"`
	Type        string         `json:"type"`
	Collections []string       `json:"collections"`
	Parsers     []string       `json:"parsers"`
	Lines       int            `json:"lines"`
	LoadSec     float64        `json:"load_sec"`
	WallSec     float64        `json:"wall_sec"`
	CPUSec      float64        `json:"cpu_sec"`
	PeakRSSKB   int64          `json:"peak_rss_kb"`
	PerScenario map[string]int `json:"alerts_per_scenario"`
}

// targets of the daemon path (issue 14).
var targets = map[string]time.Duration{"sshd": 4 * time.Second, "nginx": 8 * time.Second}

const (
	targetRSSKB = 128 << 10
	targetRatio = 1.2
)

type options struct {
	bin, agentbench, hub, work string
	reuse                      string
	n, workers, runs           int
	seed                       int64
	only                       string
	profile                    bool
	timeout                    time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "build/bin", "folder holding crowdsec and cscli")
	flag.StringVar(&o.agentbench, "agentbench", "build/bench/agentbench", "the agentbench binary")
	flag.StringVar(&o.hub, "hub", "../shared/hub", "hub folder the rules come from")
	flag.IntVar(&o.n, "n", 1000000, "lines per log")
	flag.Int64Var(&o.seed, "seed", 1, "generator seed")
	flag.IntVar(&o.workers, "workers", 2, "parse workers, for agentbench and the daemon (parser_routines)")
	flag.IntVar(&o.runs, "runs", 2, "measurements of each kind; the best counts")
	flag.StringVar(&o.only, "only", "", "sshd or nginx (default both)")
	flag.StringVar(&o.work, "dir", "", "work folder, kept (default a temporary one, removed)")
	flag.BoolVar(&o.profile, "profile", false, "write the replay's and the LAPI's CPU and heap profiles (crowdsec -cpuprofile/-memprofile) into the work folder, kept; the LAPI's stop before the alerts are listed")
	flag.StringVar(&o.reuse, "reuse", "", "skip agentbench: take its figures and logs from this -json file of an earlier run")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on each process run")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "replaybench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	var err error
	for _, p := range []*string{&o.bin, &o.agentbench, &o.hub} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if o.work == "" {
		if o.work, err = os.MkdirTemp("", "replaybench-"); err != nil {
			return err
		}
		if !o.profile {
			defer os.RemoveAll(o.work)
		}
	} else if err := os.MkdirAll(o.work, 0o755); err != nil {
		return err
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("replaybench: %d lines per log, seed %d, %d workers, best of %d, hub %s, work %s\nload average: %s",
		o.n, o.seed, o.workers, o.runs, o.hub, o.work, load)

	// agentbench: generates the logs into the work folder, replays them
	// in-process; its best run per log is the reference.
	agent := map[string]figures{}
	if o.reuse != "" {
		data, err := os.ReadFile(o.reuse)
		if err == nil {
			err = json.Unmarshal(data, &agent)
		}
		if err != nil {
			return fmt.Errorf("-reuse: %w", err)
		}
		if o.only != "" {
			maps.DeleteFunc(agent, func(k string, _ figures) bool { return k != o.only })
		}
	}
	for i := range o.runs {
		if o.reuse != "" {
			break
		}
		out := filepath.Join(o.work, fmt.Sprintf("agentbench-%d.json", i))
		args := []string{"-hub", o.hub, "-n", strconv.Itoa(o.n), "-seed", strconv.FormatInt(o.seed, 10),
			"-workers", strconv.Itoa(o.workers), "-single", "-dir", o.work, "-json", out}
		if o.only != "" {
			args = append(args, "-only", o.only)
		}
		fmt.Printf("\n$ agentbench %s\n", strings.Join(args, " "))
		if _, err := runChild(o.timeout, os.Stdout, nil, o.agentbench, args...); err != nil {
			return fmt.Errorf("agentbench: %w", err)
		}
		var got map[string]figures
		data, err := os.ReadFile(out)
		if err == nil {
			err = json.Unmarshal(data, &got)
		}
		if err != nil {
			return fmt.Errorf("agentbench's figures: %w", err)
		}
		for name, f := range got {
			if best, ok := agent[name]; !ok || f.WallSec < best.WallSec {
				agent[name] = f
			}
		}
	}

	ok := true
	for _, name := range slices.Sorted(maps.Keys(agent)) {
		ref := agent[name]
		var best *replayResult
		for i := range o.runs {
			res, err := replay(o, name, ref, i)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Printf("%s daemon run %d: wall %.2f s, CPU %.2f s, peak RSS %.1f MB, %d alerts at the LAPI (LAPI CPU %.2f s during the replay, %.2f s in all)\n",
				name, i+1, res.wall.Seconds(), res.cpu.Seconds(), float64(res.maxRSSKB)/1024, sum(res.perScenario), res.lapiReplay.Seconds(), res.lapiCPU.Seconds())
			if res.timeline != "" {
				fmt.Printf("  timeline: %s\n", res.timeline)
			}
			if best == nil || res.wall < best.wall {
				best = res
			}
		}
		if !report(name, ref, best) {
			ok = false
		}
	}
	if !ok {
		return errors.New("the daemon's alerts differ from agentbench's")
	}
	return nil
}

type replayResult struct {
	// timeline is the replay's own account of its time (the fields of
	// its "replay timeline" log line), "" if it logged none.
	timeline    string
	wall, cpu   time.Duration
	maxRSSKB    int64
	perScenario map[string]int
	lapiCPU     time.Duration // the LAPI's, from its start to its stop
	lapiReplay  time.Duration // the LAPI's while the replay ran (no start-up, no closing list)
}

// replay runs one daemon replay of ref's log against a fresh LAPI.
func replay(o options, name string, ref figures, i int) (*replayResult, error) {
	dir := filepath.Join(o.work, fmt.Sprintf("%s-%d", name, i))
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	l, err := startLAPI(o, dir)
	if err != nil {
		return nil, err
	}
	defer l.stop()
	cfg, err := agentConfig(o, dir, ref, l)
	if err != nil {
		return nil, err
	}
	args := []string{"-c", cfg, "-dsn", "file://" + ref.Log, "-type", ref.Type, "-no-api"}
	if o.profile {
		args = append(args, "-cpuprofile", filepath.Join(dir, "cpu.pprof"), "-memprofile", filepath.Join(dir, "heap.pprof"))
	}
	logf, err := os.Create(filepath.Join(dir, "crowdsec-replay.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	env := append(os.Environ(), "TMPDIR="+dir) // the replay's own alert queue
	// The child's maxrss counts this process's peak RSS (Linux keeps the
	// high-water mark of the memory it was started from): start it from
	// this process's current, small RSS.
	runtime.GC()
	debug.FreeOSMemory()
	if err := procstat.ResetPeak(os.Getpid()); err != nil {
		return nil, fmt.Errorf("resetting this process's peak RSS: %w", err)
	}
	lapiBefore := procstat.CPU(l.cmd.Process.Pid)
	start := time.Now()
	ps, err := runChild(o.timeout, logf, env, filepath.Join(o.bin, "crowdsec"), args...)
	wall := time.Since(start)
	lapiDuring := procstat.CPU(l.cmd.Process.Pid) - lapiBefore
	if err != nil {
		return nil, fmt.Errorf("crowdsec replay (see %s): %w", logf.Name(), err)
	}
	ru, _ := ps.SysUsage().(*syscall.Rusage)
	res := &replayResult{wall: wall, lapiReplay: lapiDuring}
	if ru != nil {
		res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.maxRSSKB = ru.Maxrss // kB on Linux
	}
	res.timeline = timelineOf(logf.Name())
	var startCPU time.Duration
	if o.profile {
		// The LAPI's profiles cover the replay only: it stops (and
		// writes them) before the alerts are listed by a LAPI started
		// again on the same database.
		startCPU = l.stop()
		if err := l.start(); err != nil {
			return nil, err
		}
	}
	if res.perScenario, err = l.alertsPerScenario(); err != nil {
		return nil, err
	}
	res.lapiCPU = startCPU + l.stop()
	return res, nil
}

// timelineOf returns the fields of the "replay timeline" line in the
// replay's log: when each step ended, counted from the process's start,
// and how long each stage waited for the others.
func timelineOf(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const msg = `msg="replay timeline" `
	for line := range strings.Lines(string(data)) {
		if _, fields, ok := strings.Cut(line, msg); ok {
			return strings.TrimSpace(fields)
		}
	}
	return ""
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// report prints one log's comparison and says whether the alerts match.
func report(name string, ref figures, r *replayResult) bool {
	target := targets[name]
	verdict := "OK"
	if r.wall > target || r.maxRSSKB > targetRSSKB || r.wall.Seconds() > targetRatio*ref.WallSec {
		verdict = "ABOVE TARGET"
	}
	fmt.Printf("\n== %s: %d lines (%s)\n", name, ref.Lines, ref.Log)
	fmt.Printf("  %-28s %8s %8s %10s %12s\n", "", "wall s", "CPU s", "RSS MB", "lines/s")
	fmt.Printf("  %-28s %8.2f %8.2f %10.1f %12.0f\n", "agentbench (replay only)", ref.WallSec, ref.CPUSec, float64(ref.PeakRSSKB)/1024, float64(ref.Lines)/ref.WallSec)
	fmt.Printf("  %-28s %8.2f %8s %10s\n", "agentbench rules load", ref.LoadSec, "", "")
	fmt.Printf("  %-28s %8.2f %8.2f %10.1f %12.0f\n", "crowdsec -dsn (whole run)", r.wall.Seconds(), r.cpu.Seconds(), float64(r.maxRSSKB)/1024, float64(ref.Lines)/r.wall.Seconds())
	fmt.Printf("  %-28s %8s %8.2f\n", "LAPI during the replay", "", r.lapiReplay.Seconds())
	fmt.Printf("  %-28s %8s %8.2f\n", "LAPI in all (+start, list)", "", r.lapiCPU.Seconds())
	fmt.Printf("  ratio daemon/agentbench: wall %.2fx (%.2fx counting the rules' load), CPU %.2fx\n",
		r.wall.Seconds()/ref.WallSec, r.wall.Seconds()/(ref.WallSec+ref.LoadSec), r.cpu.Seconds()/ref.CPUSec)
	fmt.Printf("  targets: wall <= %s, RSS <= %d MB, <= %.1fx agentbench  [%s]\n", target, targetRSSKB>>10, targetRatio, verdict)
	same := maps.Equal(ref.PerScenario, r.perScenario)
	fmt.Printf("  alerts per scenario (agentbench / at the LAPI):\n")
	names := slices.Sorted(maps.Keys(ref.PerScenario))
	for k := range r.perScenario {
		if _, ok := ref.PerScenario[k]; !ok {
			names = append(names, k)
		}
	}
	for _, k := range names {
		mark := ""
		if ref.PerScenario[k] != r.perScenario[k] {
			mark = "  MISMATCH"
		}
		fmt.Printf("    %-45s %6d %6d%s\n", k, ref.PerScenario[k], r.perScenario[k], mark)
	}
	if same {
		fmt.Printf("  same alerts: %d\n", sum(r.perScenario))
	}
	return same
}

// runChild runs a command to its end, bounded by timeout.
func runChild(timeout time.Duration, out *os.File, env []string, bin string, args ...string) (*os.ProcessState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr, cmd.Env = out, out, env
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: still running after %s", filepath.Base(bin), timeout)
	}
	if err != nil {
		return nil, err
	}
	return cmd.ProcessState, nil
}

// lapi is a LAPI process on a fresh database.
type lapi struct {
	dir, cfg, cscli, url, bin string
	cmd                       *exec.Cmd
	done                      chan error
}

// startLAPI writes a LAPI-only configuration into dir, registers a watcher
// (its credentials in dir/creds.toml) and starts `crowdsec -no-cs`.
func startLAPI(o options, dir string) (*lapi, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	addr, err := loopback.FreeAddr()
	if err != nil {
		return nil, err
	}
	prof, err := os.ReadFile("config/profiles.toml")
	if err != nil {
		return nil, fmt.Errorf("run from the repository root: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles.toml"), prof, 0o600); err != nil {
		return nil, err
	}
	l := &lapi{dir: dir, cfg: filepath.Join(dir, "lapi.toml"), cscli: filepath.Join(o.bin, "cscli"), url: "http://" + addr + "/"}
	// No retention flush: every alert of the replay is counted.
	conf := fmt.Sprintf(`[common]
log_level = "warning"
[config_paths]
config_dir = %[1]q
data_dir = %[1]q
[db_config]
db_path = %[2]q
  [db_config.flush]
  max_items = 0
  max_age = "0"
[api.client]
credentials_path = %[3]q
[api.server]
listen_uri = %[4]q
profiles_path = %[5]q
allowlist_host_addresses = false
[prometheus]
enabled = false
`, dir, filepath.Join(dir, "crowdsec.db"), filepath.Join(dir, "creds.toml"), addr, filepath.Join(dir, "profiles.toml"))
	if err := os.WriteFile(l.cfg, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(l.cscli, "-c", l.cfg, "machines", "add", "replaybench", "--auto", "--url", l.url).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("cscli machines add: %w\n%s", err, out)
	}
	l.bin = filepath.Join(o.bin, "crowdsec")
	var profiles []string
	if o.profile {
		profiles = []string{"-cpuprofile", filepath.Join(dir, "lapi-cpu.pprof"), "-memprofile", filepath.Join(dir, "lapi-heap.pprof")}
	}
	return l, l.start(profiles...)
}

// start starts the LAPI process (again) and waits for it to answer.
func (l *lapi) start(extra ...string) error {
	logf, err := os.OpenFile(filepath.Join(l.dir, "lapi.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	l.cmd = exec.Command(l.bin, append([]string{"-c", l.cfg, "-no-cs"}, extra...)...)
	l.cmd.Stdout, l.cmd.Stderr = logf, logf
	if err := l.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	l.done = make(chan error, 1)
	go func() { l.done <- l.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(l.url + "health"); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-l.done:
			l.cmd = nil
			return fmt.Errorf("the LAPI stopped at start (%v); see %s", err, logf.Name())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			l.stop()
			return fmt.Errorf("the LAPI did not answer within 30 s; see %s", logf.Name())
		}
	}
}

// stop stops the LAPI and returns the CPU time (user+sys) it used.
func (l *lapi) stop() time.Duration {
	if l.cmd == nil {
		return 0
	}
	_ = l.cmd.Process.Signal(os.Interrupt)
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
	}
	var cpu time.Duration
	if ru, ok := l.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	l.cmd = nil
	return cpu
}

// alertsPerScenario asks the LAPI (cscli alerts list, as an operator
// would) for every alert it holds and counts them by scenario.
func (l *lapi) alertsPerScenario() (map[string]int, error) {
	cmd := exec.Command(l.cscli, "-c", l.cfg, "alerts", "list", "-o", "json", "--limit", "0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Decoded one alert at a time: the whole list is hundreds of MB,
	// which would count in the next replay's maxrss (see replay).
	n := map[string]int{}
	dec := json.NewDecoder(out)
	_, derr := dec.Token() // [
	for derr == nil && dec.More() {
		var a struct {
			Scenario string `json:"scenario"`
		}
		if derr = dec.Decode(&a); derr == nil {
			n[a.Scenario]++
		}
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("cscli alerts list: %w\n%s", err, stderr.Bytes())
	}
	if derr != nil {
		return nil, fmt.Errorf("cscli alerts list: %w", derr)
	}
	return n, nil
}

// agentConfig writes the replaying agent's configuration: ref's
// collections and basic parsers from the hub (installed as cscli does),
// the LAPI's watcher credentials, no other log source.
func agentConfig(o options, dir string, ref figures, l *lapi) (string, error) {
	etc := filepath.Join(dir, "etc")
	for _, d := range []string{etc, filepath.Join(etc, "acquis.d"), filepath.Join(dir, "state")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	h, err := hub.OpenHub(o.hub)
	if err != nil {
		return "", err
	}
	in := &hub.Installer{Hub: h, ConfigDir: etc}
	for _, p := range ref.Parsers {
		if _, err := in.Install("parsers", p); err != nil {
			return "", fmt.Errorf("installing %s: %w", p, err)
		}
	}
	cols, _ := json.Marshal(ref.Collections)
	cfg := filepath.Join(dir, "agent.toml")
	conf := fmt.Sprintf(`[common]
log_level = "info"
[config_paths]
config_dir = %[1]q
data_dir = %[2]q
hub_dir = %[3]q
simulation_path = %[4]q
[crowdsec_service]
acquisition_dir = %[5]q
collections = %[6]s
parser_routines = %[7]d
state_dir = %[8]q
[api.client]
credentials_path = %[9]q
[api.server]
profiles_path = %[10]q
[prometheus]
enabled = false
`, etc, dir, o.hub, filepath.Join(etc, "simulation.toml"), filepath.Join(etc, "acquis.d"), cols, o.workers,
		filepath.Join(dir, "state"), filepath.Join(l.dir, "creds.toml"), filepath.Join(l.dir, "profiles.toml"))
	return cfg, os.WriteFile(cfg, []byte(conf), 0o600)
}
