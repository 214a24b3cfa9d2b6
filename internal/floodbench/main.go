// Command floodbench measures the agent's bucket memory under a flood of
// distinct sources: it parses generated sshd lines, one failed login from
// each of -sources addresses, with Rampart's rules (rules/: the ssh
// scenarios) and pours them into a bucket engine in time-machine mode, as
// the agent does. It reports the live buckets per scenario, the heap they
// hold (bytes per live bucket, per source), peak heap and RSS, then ticks
// the engine on after the last line (one tick per second of log time, as
// a live agent does) and reports when the buckets are freed and the heap
// is back. Each configuration runs in a child process of its own, so one
// run's heap does not inflate the next one's RSS: first without a cap on
// live buckets, then with -cap.
//
//	go run ./internal/floodbench -rules rules -sources 200000 -cap 100000
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/procstat"
)

func main() {
	rulesDir := flag.String("rules", "rules", "hub folder with Rampart's rules")
	sources := flag.Int("sources", 200000, "distinct source addresses, one failed login each")
	rate := flag.Int("rate", 2000, "lines per second of log time")
	limit := flag.Int("cap", 100000, "live buckets per scenario for the capped run")
	child := flag.Int("child", -1, "run one configuration with this cap (0: none) and print its figures")
	memProfile := flag.String("memprofile", "", "child: write a heap profile here once the flood is poured")
	settle := flag.Duration("settle", time.Minute, "once every bucket is freed, watch the RSS this long (real time)")
	flag.Parse()
	if *child >= 0 {
		memtune.Apply()
		if err := run(*rulesDir, *sources, *rate, *child, *memProfile, *settle); err != nil {
			fmt.Fprintln(os.Stderr, "floodbench:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("floodbench: %d sources, one failed ssh login each, %d lines/s of log time, rules %s, %d CPUs\n",
		*sources, *rate, *rulesDir, runtime.NumCPU())
	for _, c := range []int{0, *limit} {
		cmd := exec.Command(os.Args[0], "-rules", *rulesDir, "-sources", strconv.Itoa(*sources),
			"-rate", strconv.Itoa(*rate), "-settle", settle.String(), "-child", strconv.Itoa(c))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "floodbench:", err)
			os.Exit(1)
		}
	}
}

// heapLive is the heap's live bytes after a full collection.
func heapLive() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// heapInUse is the heap's object bytes now, garbage included.
func heapInUse() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func mb(b uint64) float64 { return float64(b) / (1 << 20) }

func rssMB() float64 { return float64(procstat.KB(os.Getpid(), "VmRSS")) / 1024 }

func run(rulesDir string, sources, rate, limit int, memProfile string, settle time.Duration) error {
	h, err := hub.OpenHub(rulesDir)
	if err != nil {
		return err
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"rampart/sshd"}})
	if err != nil {
		return err
	}
	defer rs.Close()
	engine := rs.NewEngine(true)
	engine.SetLimit(limit)
	label := "no cap"
	if limit > 0 {
		label = fmt.Sprintf("cap %d per scenario", limit)
	}
	fmt.Printf("\n== %s\n", label)

	base := heapLive()
	_ = procstat.ResetPeak(os.Getpid())
	baseRSS := rssMB()
	start := time.Date(2026, 12, 6, 10, 0, 0, 0, time.Local)
	src := "/var/log/auth.log"
	labels := map[string]string{"type": "syslog"}
	var peakHeap uint64
	var last time.Time
	alerts := 0
	t0 := time.Now()
	var raw []byte
	for i := range sources {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		last = at
		// 11.0.0.0 on: public addresses, so the private-range whitelist
		// keeps none of them
		ip := fmt.Sprintf("11.%d.%d.%d", i>>16&255, i>>8&255, i&255)
		raw = at.AppendFormat(raw[:0], time.Stamp)
		raw = fmt.Appendf(raw, " host sshd[%d]: Failed password for root from %s port %d ssh2", 1000+i%30000, ip, 1024+i%60000)
		evt := event.New(event.Line{Raw: string(raw), Src: src, Module: "file", Labels: labels, Time: time.Now()})
		if err := rs.Parse(&evt, nil); err != nil {
			return err
		}
		if !evt.Process || evt.Whitelisted {
			return fmt.Errorf("line %d not parsed: %q", i, raw)
		}
		alerts += len(engine.Pour(&evt))
		if i%10000 == 0 {
			peakHeap = max(peakHeap, heapInUse())
		}
	}
	took := time.Since(t0)
	peakHeap = max(peakHeap, heapInUse())
	live := heapLive()
	if memProfile != "" {
		f, err := os.Create(memProfile)
		if err != nil {
			return err
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	buckets := engine.Buckets()
	fmt.Printf("poured %d lines in %s (%.0f lines/s), %d alerts\n", sources, took.Round(time.Millisecond), float64(sources)/took.Seconds(), alerts)
	for _, s := range engine.ScenarioStats() {
		if s.Created > 0 {
			fmt.Printf("  %-24s live %7d  created %7d  underflowed %7d  evicted %7d\n", s.Name, s.Alive, s.Created, s.Underflowed, s.Evicted)
		}
	}
	fmt.Printf("live buckets %d; heap: %.1f MB before, %.1f MB after (live), peak %.1f MB in use; RSS %.1f MB before, %.1f MB now, peak %.1f MB\n",
		buckets, mb(base), mb(live), mb(peakHeap), baseRSS, rssMB(), float64(procstat.KB(os.Getpid(), "VmHWM"))/1024)
	if buckets > 0 {
		fmt.Printf("bytes per live bucket %.0f, per source %.0f\n", float64(live-base)/float64(buckets), float64(live-base)/float64(sources))
	}

	// After the flood: one tick per second of log time, as a live agent.
	fmt.Println("after the last line (log time), ticking every second:")
	report := func(after time.Duration) {
		fmt.Printf("  +%-6s live buckets %7d, heap %.1f MB (live), RSS %.1f MB\n", after, engine.Buckets(), mb(heapLive()), rssMB())
	}
	marks := map[time.Duration]bool{10 * time.Second: true, 30 * time.Second: true, time.Minute: true, 2*time.Minute + 30*time.Second: true, 5 * time.Minute: true, 10 * time.Minute: true}
	for s := 1; s <= 25*60; s++ {
		after := time.Duration(s) * time.Second
		alerts += len(engine.Tick(last.Add(after)))
		if marks[after] {
			report(after)
		}
		if engine.Buckets() == 0 {
			report(after)
			fmt.Printf("  every bucket freed %s after the last line (log time); heap %.1f MB (live, %.1f MB before the flood)\n", after, mb(heapLive()), mb(base))
			settleRSS(settle)
			debug.FreeOSMemory()
			fmt.Printf("  RSS %.1f MB once free memory is returned to the OS at once (debug.FreeOSMemory)\n", rssMB())
			return nil
		}
	}
	fmt.Printf("  %d buckets still alive 25 minutes after the last line\n", engine.Buckets())
	return nil
}

// settleRSS samples the RSS for d of real time while Go's scavenger
// returns the freed heap to the OS at its own pace, as in the agent.
func settleRSS(d time.Duration) {
	if d <= 0 {
		return
	}
	start := time.Now()
	fmt.Printf("  RSS (real time, the runtime returning memory by itself): %.1f MB", rssMB())
	for time.Since(start) < d {
		time.Sleep(d / 6)
		fmt.Printf(", +%s %.1f MB", time.Since(start).Round(time.Second), rssMB())
	}
	fmt.Println()
}
