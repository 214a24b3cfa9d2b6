// Command agentbench replays generated sshd and nginx logs (internal/loggen)
// through the hub's rules the way the agent does (parse, then pour into the
// scenarios in time-machine mode) and reports wall time, peak RSS, lines
// per second, parsed/unparsed counts and alerts per scenario. Parsing runs
// in N goroutines; pouring runs in one, in input order, so the alerts do
// not depend on N: it checks that by replaying with 1 worker and with N.
// The GC runs with the agent's settings (internal/memtune) unless
// -default-gc is given.
//
// With -dir the logs stay there (sshd.log, nginx.log) and -json writes the
// figures, for internal/replaybench, which replays the same logs through
// the real daemon and compares.
//
//	go run ./internal/agentbench -hub ../shared/hub -n 1000000 -workers 2
//
// To compare with another tool's replay of the very same files: -dir DIR
// keeps the logs, -reuse replays them again, -alerts OUT writes the alerts
// as JSON lines (scenario, ip, start, stop, count) and -compare REF prints,
// scenario by scenario, the alert counts, the sources only one side
// alerted on and the sources alerted on a different number of times or at
// other times, against REF/sshd.alerts.jsonl and REF/nginx.alerts.jsonl.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/leakybucket"
	"github.com/rampart-ips/rampart/agent/parser"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/internal/alertdiff"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/procstat"
)

// basics are the parsers every setup has (crowdsecurity/linux and
// crowdsecurity/whitelists upstream): syslog framing, dates, private IPs.
var basics = []string{"crowdsecurity/syslog-logs", "crowdsecurity/dateparse-enrich", "crowdsecurity/whitelists"}

type logSpec struct {
	name        string
	logType     string
	collections []string
	gen         func(w *os.File, n int, seed int64) (int, error)
	attackers   func(seed int64) []string
	target      time.Duration
}

var specs = []logSpec{
	{"sshd", "syslog", []string{"crowdsecurity/sshd"},
		func(w *os.File, n int, seed int64) (int, error) { return loggen.SSHDCount(w, n, seed) }, loggen.SSHDAttackers, 10 * time.Second},
	{"nginx", "nginx", []string{"crowdsecurity/nginx", "crowdsecurity/base-http-scenarios", "crowdsecurity/http-cve"},
		func(w *os.File, n int, seed int64) (int, error) { return loggen.NginxCount(w, n, seed) }, loggen.NginxAttackers, 10 * time.Second},
}

func main() {
	hubDir := flag.String("hub", "../shared/hub", "hub folder (index.json, parsers, scenarios, data)")
	n := flag.Int("n", 1000000, "lines per log")
	workers := flag.Int("workers", runtime.NumCPU(), "parsing goroutines for the N-worker replay")
	seed := flag.Int64("seed", 1, "generator seed")
	only := flag.String("only", "", "sshd or nginx (default both)")
	dir := flag.String("dir", "", "where to write the logs (default a temporary folder, removed)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the replays")
	memprofile := flag.String("memprofile", "", "write an allocation profile (pprof -sample_index=alloc_space) of the run when it ends")
	single := flag.Bool("single", false, "replay only with -workers (skip the determinism run)")
	defaultGC := flag.Bool("default-gc", false, "keep Go's default GC settings instead of the agent's (internal/memtune)")
	reuse := flag.Bool("reuse", false, "replay the logs already in -dir instead of generating them (to replay the same files with another tool)")
	alertsDir := flag.String("alerts", "", "write each log's alerts as JSON lines to DIR/NAME.alerts.jsonl")
	compare := flag.String("compare", "", "compare each log's alerts, scenario by scenario and source by source, with DIR/NAME.alerts.jsonl (another tool's replay of the same log)")
	jsonOut := flag.String("json", "", "also write the figures of the -workers replays to this file (JSON, per log)")
	flag.Parse()
	gc := "Go defaults"
	if !*defaultGC {
		st := memtune.Apply()
		gc = fmt.Sprintf("agent settings (GOGC %d, memory limit %d MiB; -1: from the environment)", st.GCPercent, st.MemoryLimit>>20)
	}

	h, err := hub.OpenHub(*hubDir)
	if err != nil {
		fail(err)
	}
	work := *dir
	if work == "" {
		if work, err = os.MkdirTemp("", "agentbench"); err != nil {
			fail(err)
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		fail(err)
	}
	fmt.Printf("agentbench: %d lines per log, seed %d, %d CPUs, GOMAXPROCS %d, hub %s, GC: %s\n", *n, *seed, runtime.NumCPU(), runtime.GOMAXPROCS(0), *hubDir, gc)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memprofile != "" {
		defer writeMemProfile(*memprofile)
	}
	ok := true
	report := map[string]Figures{}
	for _, sp := range specs {
		if *only != "" && *only != sp.name {
			continue
		}
		fig, good := bench(h, sp, opts{dir: work, n: *n, seed: *seed, workers: *workers, single: *single, reuse: *reuse, alerts: *alertsDir, compare: *compare})
		ok = ok && good
		report[sp.name] = fig
	}
	if *jsonOut != "" {
		data, err := json.MarshalIndent(report, "", "  ")
		if err == nil {
			err = os.WriteFile(*jsonOut, data, 0o600)
		}
		if err != nil {
			fail(fmt.Errorf("writing -json: %w", err))
		}
	}
	if !ok {
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "agentbench:", err)
	os.Exit(1)
}

type rules struct {
	basics    []string // the basics the hub has
	rs        *ruleset.Ruleset
	pipe      *parser.Pipeline
	scenarios []*leakybucket.Scenario
	items     ruleset.Items
}

func load(h *hub.Hub, sp logSpec) (*rules, error) {
	var base []string
	for _, p := range basics {
		if _, ok := h.Item("parsers", p); ok {
			base = append(base, p)
		}
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: sp.collections, Parsers: base})
	if err != nil {
		return nil, err
	}
	return &rules{basics: base, rs: rs, pipe: rs.Parsers, scenarios: rs.Scenarios, items: rs.Items}, nil
}

// Figures are what -json writes for one log: its file, the rules' load
// time, and the -workers replay's wall and CPU time (user+sys), peak RSS
// and alerts per scenario.
type Figures struct {
	Log         string         `json:"log"`
	Type        string         `json:"type"`        // labels.type
	Collections []string       `json:"collections"` // what the rules are
	Parsers     []string       `json:"parsers"`     // loaded besides the collections
	Lines       int            `json:"lines"`
	LoadSec     float64        `json:"load_sec"`
	WallSec     float64        `json:"wall_sec"`
	CPUSec      float64        `json:"cpu_sec"`
	PeakRSSKB   int64          `json:"peak_rss_kb"`
	PerScenario map[string]int `json:"alerts_per_scenario"`
}

// result is one replay's figures.
type result struct {
	workers                        int
	lines, parsed, unparsed, white int
	poured                         int
	wall, cpu                      time.Duration
	peakKB                         int64
	perScenario                    map[string]int
	pairs                          []string // scenario source, in emission order
	alerts                         []alertdiff.Alert
	digest                         [32]byte
	buckets                        int
	hostileSrcs, otherSrcs         int
}

type batch struct {
	lines []event.Line
	evts  []event.Event
	preps []leakybucket.Prepared
	err   error
	done  chan struct{}
}

func replay(r *rules, path, logType string, workers int, attackers map[string]bool) (*result, error) {
	runtime.GC()
	_ = procstat.ResetPeak(os.Getpid())
	start, cpu0 := time.Now(), cpuTime()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"type": logType}
	work := make(chan *batch, workers*2)
	ordered := make(chan *batch, workers*4)
	var readErr error
	go func() {
		defer close(work)
		defer close(ordered)
		// read as the daemon's replay of a -dsn file:// reads
		_, readErr = acquisition.ReadFile(context.Background(), abs, labels, nil, func(ls []event.Line) error {
			b := &batch{lines: ls, done: make(chan struct{})}
			ordered <- b
			work <- b
			return nil
		})
	}()
	// Workers parse and run the per-event half of the scenarios (filter,
	// groupby, distinct, cancel_on); one goroutine pours in input order.
	engine := r.rs.NewEngine(true) // with the collections' alert contexts
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// events are made as the daemon's parse workers make them
			// (agent/runner), so the two paths compare like for like
			var mk event.Maker
			for b := range work {
				b.evts = make([]event.Event, len(b.lines))
				b.preps = make([]leakybucket.Prepared, len(b.lines))
				for i, l := range b.lines {
					evt := &b.evts[i]
					*evt = mk.New(l)
					if err := r.pipe.Parse(evt, nil); err != nil && b.err == nil {
						b.err = err
					}
					if evt.Process && !evt.Whitelisted {
						b.preps[i] = engine.Prepare(evt)
						mk.Kept(evt)
					} else {
						mk.Drop(evt)
					}
				}
				close(b.done)
			}
		})
	}
	res := &result{workers: workers, perScenario: map[string]int{}}
	h := sha256.New()
	srcSeen := map[string]bool{}
	for b := range ordered {
		<-b.done
		if b.err != nil {
			return nil, b.err
		}
		for i := range b.evts {
			evt := &b.evts[i]
			res.lines++
			if !evt.Process {
				res.unparsed++
				continue
			}
			res.parsed++
			if evt.Whitelisted {
				res.white++
				continue
			}
			res.poured++
			for _, ov := range engine.PourPrepared(evt, b.preps[i]) {
				sc, src := "", ""
				if a := ov.Overflow.Alert; a != nil {
					sc = a.Scenario
					if a.Source != nil {
						src = a.Source.Value
					}
				}
				res.perScenario[sc]++
				if a := ov.Overflow.Alert; a != nil {
					res.alerts = append(res.alerts, alertdiff.Alert{Scenario: sc, IP: src, Start: a.StartAt, Stop: a.StopAt, Count: int(a.EventsCount)})
				}
				p := sc + " " + src
				res.pairs = append(res.pairs, p)
				h.Write([]byte(p + "\n"))
				if !srcSeen[src] {
					srcSeen[src] = true
					if attackers[src] {
						res.hostileSrcs++
					} else {
						res.otherSrcs++
					}
				}
			}
		}
		b.evts, b.lines, b.preps = nil, nil, nil
	}
	wg.Wait()
	if readErr != nil {
		return nil, readErr
	}
	res.wall, res.cpu = time.Since(start), cpuTime()-cpu0
	res.peakKB = procstat.KB(os.Getpid(), "VmHWM")
	res.buckets = engine.Buckets()
	copy(res.digest[:], h.Sum(nil))
	return res, nil
}

// cpuTime is the user+sys time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// opts are the command line's settings for one log.
type opts struct {
	dir             string
	n               int
	seed            int64
	workers         int
	single, reuse   bool
	alerts, compare string
}

func bench(h *hub.Hub, sp logSpec, o opts) (Figures, bool) {
	fmt.Printf("\n== %s (collections %s)\n", sp.name, strings.Join(sp.collections, ", "))
	path := filepath.Join(o.dir, sp.name+".log")
	seed, workers := o.seed, o.workers
	t0 := time.Now()
	if st, err := os.Stat(path); o.reuse && err == nil {
		fmt.Printf("reusing %s: %.1f MB\n", path, float64(st.Size())/1e6)
	} else {
		f, err := os.Create(path)
		if err != nil {
			fail(err)
		}
		hostile, err := sp.gen(f, o.n, seed)
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			fail(err)
		}
		st, _ := os.Stat(path)
		fmt.Printf("generated %s: %d lines, %.1f MB, %.1f%% hostile, in %s\n", path, o.n, float64(st.Size())/1e6, 100*float64(hostile)/float64(o.n), time.Since(t0).Round(time.Millisecond))
	}
	t0 = time.Now()
	r, err := load(h, sp)
	if err != nil {
		fail(err)
	}
	loadTime := time.Since(t0)
	fmt.Printf("loaded %d parsers, %d scenario files (%d scenarios), %d postoverflows (not run) in %s\n",
		len(r.items.Parsers), len(r.items.Scenarios), len(r.scenarios), len(r.items.PostOverflows), time.Since(t0).Round(time.Millisecond))
	attackers := map[string]bool{}
	for _, ip := range sp.attackers(seed) {
		attackers[ip] = true
	}
	runs := []int{workers}
	if !o.single && workers != 1 {
		runs = []int{1, workers}
	}
	var results []*result
	for _, w := range runs {
		res, err := replay(r, path, sp.logType, w, attackers)
		if err != nil {
			fail(err)
		}
		results = append(results, res)
		verdict := "OK"
		if res.wall > sp.target || res.peakKB > 256<<10 {
			verdict = "ABOVE TARGET"
		}
		fmt.Printf("workers=%d: wall %s (target <= %s), CPU %s, peak RSS %.1f MB (target <= 256 MB), %.0f lines/s  [%s]\n",
			w, res.wall.Round(time.Millisecond), sp.target, res.cpu.Round(time.Millisecond), float64(res.peakKB)/1024, float64(res.lines)/res.wall.Seconds(), verdict)
		fmt.Printf("  lines %d, parsed %d, unparsed %d, whitelisted %d, poured %d, alerts %d (from %d attacker and %d other sources), buckets left %d\n",
			res.lines, res.parsed, res.unparsed, res.white, res.poured, len(res.pairs), res.hostileSrcs, res.otherSrcs, res.buckets)
	}
	last := results[len(results)-1]
	if o.alerts != "" {
		out := filepath.Join(o.alerts, sp.name+".alerts.jsonl")
		if err := alertdiff.WriteFile(out, last.alerts); err != nil {
			fail(err)
		}
		fmt.Printf("  wrote %d alerts to %s\n", len(last.alerts), out)
	}
	if o.compare != "" {
		ref := filepath.Join(o.compare, sp.name+".alerts.jsonl")
		theirs, err := alertdiff.ReadFile(ref)
		if err != nil {
			fail(err)
		}
		fmt.Printf("  compared with %s (%d alerts):\n", ref, len(theirs))
		alertdiff.Report(os.Stdout, alertdiff.Diff(last.alerts, theirs, 3), "rampart", "other")
	}
	fig := Figures{Log: path, Type: sp.logType, Collections: sp.collections, Parsers: r.basics, Lines: last.lines, LoadSec: loadTime.Seconds(), WallSec: last.wall.Seconds(), CPUSec: last.cpu.Seconds(),
		PeakRSSKB: last.peakKB, PerScenario: last.perScenario}
	names := make([]string, 0, len(last.perScenario))
	for k := range last.perScenario {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Println("  alerts per scenario:")
	for _, k := range names {
		fmt.Printf("    %-45s %6d\n", k, last.perScenario[k])
	}
	if len(results) == 2 {
		a, b := results[0], results[1]
		same := a.digest == b.digest && len(a.pairs) == len(b.pairs) && fmt.Sprint(a.perScenario) == fmt.Sprint(b.perScenario)
		if same {
			fmt.Printf("determinism: workers=1 and workers=%d gave the same %d alerts in the same order (sha256 %x)\n", b.workers, len(a.pairs), a.digest[:8])
		} else {
			fmt.Printf("determinism: MISMATCH between workers=1 (%d alerts) and workers=%d (%d alerts)\n", len(a.pairs), b.workers, len(b.pairs))
			return fig, false
		}
	}
	return fig, true
}

// writeMemProfile writes the heap profile, whose alloc_space sample counts
// every allocation since the start: where the replay's garbage comes from.
func writeMemProfile(path string) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "agentbench: writing -memprofile: %v\n", err)
	}
}
