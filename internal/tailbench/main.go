// Command tailbench measures the agent live: lines per second it sustains
// on a tailed file with Rampart's rules (rules/), and its RSS. A writer
// appends generated sshd (syslog) and nginx lines to two files as fast as
// the agent's file sources take them in; the figure is lines processed
// (parsed, poured) over the time from the first write to the last line
// processed. Alerts go to a counting sink: delivery is measured elsewhere.
//
//	go run ./internal/tailbench -rules rules -n 500000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/agent/ruleset"
	"github.com/rampart-ips/rampart/agent/runner"
	"github.com/rampart-ips/rampart/internal/loggen"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/procstat"
	"github.com/rampart-ips/rampart/models"
)

type countSink struct{ n atomic.Int64 }

func (c *countSink) Push(_ context.Context, alerts ...*models.Alert) error {
	c.n.Add(int64(len(alerts)))
	return nil
}

func main() {
	rulesDir := flag.String("rules", "rules", "hub folder with Rampart's rules")
	n := flag.Int("n", 500000, "lines per log (sshd and nginx each)")
	state := flag.Bool("state", true, "keep file positions in a state directory, as the daemon does")
	saveEvery := flag.Duration("save-interval", acquisition.DefaultStateSaveInterval, "with -state: how often positions are written")
	flag.Parse()
	memtune.Apply()
	opts := acquisition.Options{SaveInterval: *saveEvery}
	if err := run(*rulesDir, *n, *state, opts); err != nil {
		fmt.Fprintln(os.Stderr, "tailbench:", err)
		os.Exit(1)
	}
}

func run(rulesDir string, n int, state bool, opts acquisition.Options) error {
	h, err := hub.OpenHub(rulesDir)
	if err != nil {
		return err
	}
	rs, err := ruleset.Load(h, ruleset.Spec{Collections: []string{"rampart/linux", "rampart/sshd", "rampart/nginx", "rampart/base-http"}})
	if err != nil {
		return err
	}
	defer rs.Close()
	dir, err := os.MkdirTemp("", "tailbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Generated up front into files the agent does not watch, then copied:
	// the generator's memory is not the agent's.
	genSSH, genWeb := filepath.Join(dir, "gen-sshd"), filepath.Join(dir, "gen-nginx")
	if err := generate(genSSH, func(f *os.File) error { _, err := loggen.SSHDCount(f, n, 1); return err }); err != nil {
		return err
	}
	if err := generate(genWeb, func(f *os.File) error { _, err := loggen.NginxCount(f, n, 1); return err }); err != nil {
		return err
	}
	auth, access := filepath.Join(dir, "auth.log"), filepath.Join(dir, "access.log")
	for _, p := range []string{auth, access} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
	}
	var sources []acquisition.Source
	for _, c := range []acquisition.Config{
		{Source: "file", Filenames: []string{auth}, Labels: map[string]string{"type": "syslog"}},
		{Source: "file", Filenames: []string{access}, Labels: map[string]string{"type": "nginx"}},
	} {
		if state {
			opts.StateDir = filepath.Join(dir, "state")
		}
		src, err := acquisition.New(c, opts)
		if err != nil {
			return err
		}
		sources = append(sources, src)
	}
	sink := &countSink{}
	ag, err := runner.New(runner.Config{Rules: rs, Sources: sources, Sink: sink})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	time.Sleep(500 * time.Millisecond) // the sources are tailing
	runtime.GC()
	_ = procstat.ResetPeak(os.Getpid())
	start := time.Now()
	writeErr := make(chan error, 2)
	for _, w := range [][2]string{{genSSH, auth}, {genWeb, access}} {
		go func() { writeErr <- appendLines(w[1], w[0]) }()
	}
	for range 2 {
		if err := <-writeErr; err != nil {
			return err
		}
	}
	wrote := time.Since(start)
	total := int64(2 * n)
	for ag.Stats.Lines.Load() < total {
		select {
		case err := <-done:
			return fmt.Errorf("agent stopped early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("only %d of %d lines processed after 5 minutes", ag.Stats.Lines.Load(), total)
		}
	}
	took := time.Since(start)
	cancel()
	<-done
	fmt.Printf("tailbench: %d lines (%d sshd + %d nginx) appended in %s, processed in %s: %.0f lines/s; peak RSS %.1f MB; %d CPUs\n",
		total, n, n, wrote.Round(time.Millisecond), took.Round(time.Millisecond), float64(total)/took.Seconds(),
		float64(procstat.KB(os.Getpid(), "VmHWM"))/1024, runtime.NumCPU())
	positions := "no positions kept"
	if state {
		positions = "positions saved every " + opts.SaveInterval.String()
	}
	fmt.Printf("  %s; parsed %d, unparsed %d, whitelisted %d, alerts %d\n", positions, ag.Stats.Parsed.Load(), ag.Stats.Unparsed.Load(), ag.Stats.Whitelisted.Load(), sink.n.Load())
	return nil
}

func generate(path string, gen func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// appendLines copies src to the end of path in chunks of whole lines, as
// a busy daemon writes.
func appendLines(path, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	r := bufio.NewReaderSize(in, 64<<10)
	var chunk []byte
	for {
		line, err := r.ReadSlice('\n')
		chunk = append(chunk, line...)
		if len(chunk) >= 32<<10 || (err != nil && len(chunk) > 0) {
			if _, werr := out.Write(chunk); werr != nil {
				return werr
			}
			chunk = chunk[:0]
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
