// Command crowdsec is Rampart's daemon: the log-processing agent and the
// local API in one process (-no-api: agent only, -no-cs: LAPI only), or a
// one-shot replay of a log (-dsn file:///path.log -type syslog). Flags
// follow upstream's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	log "github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/rampart-ips/rampart/agent/daemon"
	"github.com/rampart-ips/rampart/capi"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/journallog"
	"github.com/rampart-ips/rampart/internal/manpage"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/promlevel"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi"
	notifications "github.com/rampart-ips/rampart/lapi/notify"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/lapi/store"
)

func main() {
	if err := run(); err != nil {
		log.WithError(err).Error("crowdsec stopped")
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("crowdsec", flag.ExitOnError)
	cfgPath := fs.String("c", csconfig.DefaultPath, "configuration file")
	testOnly := fs.Bool("t", false, "check the configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	noCS := fs.Bool("no-cs", false, "run only the local API")
	noAPI := fs.Bool("no-api", false, "run only the agent")
	noCAPI := fs.Bool("no-capi", false, "do not talk to the Central API (no signals sent, no community blocklist), whatever [api.server.online_client] says")
	dsn := fs.String("dsn", "", "replay this source once, in time-machine mode (file:///path.log, journalctl://filters=_SYSTEMD_UNIT=ssh.service), then exit")
	typ := fs.String("type", "", "with -dsn: the log type label that selects the parsers (syslog, nginx, ...)")
	replayWait := fs.Duration("replay-wait", 30*time.Second, "with -dsn: how long to wait, once the source is read or while the alert queue is full, for the LAPI to take alerts (the exit code says whether it took them all)")
	var labels labelFlags
	fs.Var(&labels, "label", "with -dsn: an extra label key:value (repeatable)")
	levels := map[string]*bool{}
	for _, l := range []string{"trace", "debug", "info", "warning", "error", "fatal"} {
		levels[l] = fs.Bool(l, false, "log at "+l+" level")
	}
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile (pprof: allocations and what is in use) to this file at exit")
	manDir := manpage.Flag(fs)
	_ = fs.Parse(os.Args[1:])
	if *manDir != "" {
		return manpage.WriteFlagPage(*manDir, page, fs, manpage.InfoFromEnv(version.Version))
	}
	if *showVersion {
		return version.Get("crowdsec").Write(os.Stdout)
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()
	textFormat := &log.TextFormatter{FullTimestamp: true}
	log.SetFormatter(textFormat)
	// Under systemd each line gets its journal priority (-p warning).
	journallog.Setup(log.StandardLogger(), os.Stderr)
	cfg, err := csconfig.Load(*cfgPath)
	if err != nil {
		return err
	}
	lvl, err := log.ParseLevel(cfg.Common.LogLevel)
	if err != nil {
		return fmt.Errorf("common.log_level: %w", err)
	}
	for name, set := range levels {
		if *set {
			if l, err := log.ParseLevel(name); err == nil {
				lvl = l
			}
		}
	}
	log.SetLevel(lvl)
	if cfg.Common.LogMedia == "file" {
		path := filepath.Join(cfg.Common.LogDir, "crowdsec.log")
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("opening log file: %w", err)
		}
		defer f.Close()
		log.SetOutput(f)
		log.SetFormatter(textFormat)
	}
	runAgent := !*noCS && (csconfig.Bool(cfg.Crowdsec.Enable, true) || *noAPI || *dsn != "")
	runAPI := !*noAPI && csconfig.Bool(cfg.API.Server.Enable, true)
	if !runAgent && !runAPI {
		return fmt.Errorf("nothing to run: the agent ([crowdsec_service] enable, -no-cs) and the local API ([api.server] enable, -no-api) are both disabled")
	}
	// Profiles are the LAPI's: an agent-only host needs none.
	var prof *profiles.Set
	var nc []*notifications.Config
	if runAPI {
		if prof, err = profiles.Load(cfg.API.Server.ProfilesPath); err != nil {
			return fmt.Errorf("loading profiles: %w", err)
		}
		if nc, err = lapi.LoadNotifications(cfg, prof); err != nil {
			return err
		}
	}
	if *testOnly {
		var parts []string
		if runAPI {
			parts = append(parts, fmt.Sprintf("local API: %d profiles, %d notifications", len(prof.Names()), len(nc)))
		}
		if runAgent {
			scenarios, sources, err := daemon.Check(cfg)
			if err != nil {
				return err
			}
			parts = append(parts, fmt.Sprintf("agent: %d scenarios, %d log sources", scenarios, sources))
		}
		fmt.Printf("configuration %s is valid (%s)\n", *cfgPath, strings.Join(parts, "; "))
		return nil
	}
	// SIGHUP reloads; caught from here on so that a HUP during the start
	// (Go's default is to exit) cannot stop the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A replay ends the process once its alerts are delivered, the
	// in-process LAPI (if any) with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	// In one process the agent starts once the LAPI listens, so its first
	// login does not fail and warn.
	lapiReady := make(chan struct{})
	if !runAPI {
		close(lapiReady)
	}
	reg := prometheus.NewRegistry()
	if csconfig.Bool(cfg.Prometheus.Enabled, true) && *dsn == "" {
		if err := serveMetrics(ctx, g, cfg, reg); err != nil {
			return err
		}
	}
	// agentDone closes once the agent has stopped (at once without one).
	agentDone := make(chan struct{})
	if !runAgent {
		close(agentDone)
	}
	// The LAPI alone runs with the GC of the default process (agent and
	// LAPI in one): at Go's default it spent a sixth of its CPU in the
	// collector taking a replay's pushes (each one's body, decoded alerts
	// and statement arguments are garbage once stored). Its memory limit
	// follows the connections it holds open (see lapi.Server.OnConnections).
	mem := memtune.Apply()
	var ag *daemon.Agent
	var lapiSrv atomic.Pointer[lapi.Server]
	var capiRunner atomic.Pointer[capi.Runner]
	if runAgent {
		opts := daemon.Options{DSN: *dsn, Registry: reg, DrainTimeout: *replayWait}
		if *dsn != "" {
			opts.Started = processStart()
			if opts.Labels, err = daemon.ParseLabels(*typ, labels); err != nil {
				return err
			}
		}
		if ag, err = daemon.New(cfg, opts); err != nil {
			return err
		}
		defer ag.Close()
		if ag.Sources() == 0 && !runAPI {
			return fmt.Errorf("no log source in %s and the local API is disabled: nothing to run", cfg.Crowdsec.AcquisitionDir)
		}
		g.Go(func() error {
			defer close(agentDone)
			select {
			case <-lapiReady:
			case <-ctx.Done():
				return nil
			}
			if !runAPI && *dsn == "" {
				// agent only: ready once its rules and sources are loaded
				notifyReady()
			}
			err := ag.Run(ctx)
			if *dsn != "" {
				cancel()
			}
			return err
		})
	}
	if runAPI {
		// The LAPI stops after the agent beside it, so that what the agent
		// sends while stopping (its last usage report) still reaches it.
		lapiCtx, stopLAPI := context.WithCancel(context.WithoutCancel(ctx))
		defer stopLAPI()
		go func() {
			<-ctx.Done()
			<-agentDone
			stopLAPI()
		}()
		g.Go(func() error {
			return runLAPI(lapiCtx, cfg, prof, reg, &lapiSrv, *noCAPI, &capiRunner, mem.Connections, func() { close(lapiReady) })
		})
	}
	go func() {
		for {
			select {
			case <-hup:
			case <-ctx.Done():
				return
			}
			if *dsn != "" {
				log.Warn("SIGHUP ignored: a replay is not reloaded")
				continue
			}
			reload(ctx, *cfgPath, ag, lapiSrv.Load(), capiRunner.Load())
		}
	}()
	return g.Wait()
}

// reload rereads the configuration on SIGHUP and applies its rules, log
// sources, profiles and notifications (see daemon.Agent.Reload), or nothing at all if any
// of them is broken: the daemon then keeps running as before and says why.
// systemd learns of it (Type=notify: RELOADING=1, then READY=1) so that
// `systemctl reload` and `status` show it.
func reload(ctx context.Context, cfgPath string, ag *daemon.Agent, srv *lapi.Server, cr *capi.Runner) {
	notify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d\nSTATUS=reloading", sdnotify.SdNotifyReloading, monotonicUsec()))
	start := time.Now()
	err := func() error {
		cfg, err := csconfig.Load(cfgPath)
		if err != nil {
			return err
		}
		var prof *profiles.Set
		var nc []*notifications.Config
		if srv != nil {
			if prof, err = profiles.Load(cfg.API.Server.ProfilesPath); err != nil {
				return fmt.Errorf("loading profiles: %w", err)
			}
			if nc, err = lapi.LoadNotifications(cfg, prof); err != nil {
				return err
			}
		}
		if ag != nil {
			if _, err := ag.Reload(ctx, cfg); err != nil {
				return err
			}
		}
		if srv != nil {
			// The notifications first: the new profiles may name new ones.
			if err := srv.SetNotifications(nc); err != nil {
				return fmt.Errorf("notifications: %w", err)
			}
			srv.SetProfiles(prof)
			if err := srv.SetBlocklists(cfg.Blocklists); err != nil {
				return fmt.Errorf("blocklists: %w", err)
			}
		}
		// After `cscli capi register`: the credentials are read again.
		if cr != nil {
			if err := cr.Apply(ctx, cfg); err != nil {
				return fmt.Errorf("central API: %w (the rest of the configuration was applied)", err)
			}
		}
		return nil
	}()
	status := "running"
	if err != nil {
		log.WithError(err).Error("reload failed: the previous rules, log sources, profiles and notifications keep running")
		status = "reload failed, previous configuration kept: " + err.Error()
	} else {
		log.WithField("took", time.Since(start).Round(time.Millisecond)).Info("configuration reloaded")
	}
	notify(sdnotify.SdNotifyReady + "\nSTATUS=" + strings.ReplaceAll(status, "\n", " "))
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1 (from version 253; older ones ignore it).
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// notify sends state to systemd when it supervises the daemon.
func notify(state string) {
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		log.WithError(err).Warn("sd_notify failed")
	}
}

func runLAPI(ctx context.Context, cfg *csconfig.Config, prof *profiles.Set, reg prometheus.Registerer, out *atomic.Pointer[lapi.Server],
	noCAPI bool, capiRunner *atomic.Pointer[capi.Runner], onConns func(int), listening func()) error {
	st, err := store.Open(ctx, store.ConfigOf(cfg.DBConfig))
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := lapi.New(ctx, cfg, st, prof)
	if err != nil {
		return err
	}
	if err := srv.RegisterMetrics(reg); err != nil {
		return err
	}
	// The Central API never holds the LAPI's start: it logs in, pushes and
	// pulls in the background, retrying while CAPI is away.
	runner := &capi.Runner{St: st, Filter: srv.FilterPulled, Share: srv, Reg: reg, Off: noCAPI}
	if err := runner.Apply(ctx, cfg); err != nil {
		return err
	}
	defer runner.Stop()
	capiRunner.Store(runner)
	srv.OnConnections(onConns)
	out.Store(srv)
	return srv.Run(ctx, func() {
		listening()
		notifyReady()
	})
}

// notifyReady tells systemd (Type=notify) the daemon serves.
func notifyReady() {
	if ok, err := sdnotify.SdNotify(false, sdnotify.SdNotifyReady); err != nil {
		log.WithError(err).Warn("sd_notify failed")
	} else if ok {
		log.Debug("notified systemd: ready")
	}
}

// serveMetrics exposes the daemon's Prometheus metrics (prometheus.listen_addr
// and listen_port, upstream's 127.0.0.1:6060 by default).
func serveMetrics(ctx context.Context, g *errgroup.Group, cfg *csconfig.Config, reg *prometheus.Registry) error {
	info := prometheus.NewGauge(prometheus.GaugeOpts{Name: "cs_info", Help: "Information about Crowdsec.",
		ConstLabels: prometheus.Labels{"version": version.Version}})
	info.Set(1)
	reg.MustRegister(info, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gatherer, err := promlevel.Gatherer(reg, cfg.Prometheus.Level)
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Path, err)
	}
	addr := net.JoinHostPort(cfg.Prometheus.ListenAddr, strconv.Itoa(cfg.Prometheus.ListenPort))
	srv := &http.Server{Addr: addr, Handler: promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	g.Go(func() error {
		<-ctx.Done()
		return srv.Close()
	})
	g.Go(func() error {
		log.WithField("listen", addr).Info("serving Prometheus metrics")
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// metrics are not worth stopping detection for
			log.WithError(err).Error("Prometheus metrics listener failed")
		}
		return nil
	})
	return nil
}

// startProfiles starts the CPU profile, if asked for, and returns what
// stops it and writes the heap profile at exit.
func startProfiles(cpuPath, memPath string) (func(), error) {
	stop := func() {}
	if cpuPath != "" {
		f, err := os.Create(cpuPath)
		if err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
		stop = func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				log.WithError(err).Error("writing the CPU profile")
			}
		}
	}
	if memPath == "" {
		return stop, nil
	}
	stopCPU := stop
	return func() {
		stopCPU()
		if err := writeHeapProfile(memPath); err != nil {
			log.WithError(err).Error("writing the heap profile")
		}
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	// The profile is as of the last collection: one now counts what the
	// run allocated since (a run ending right after a burst left most of
	// it out).
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// processStart is when the kernel started this process (to 10 ms), for a
// replay's timeline, which then counts the loading of the binary too; now
// if /proc does not say.
func processStart() time.Time {
	now := time.Now()
	stat, err1 := os.ReadFile("/proc/self/stat")
	up, err2 := os.ReadFile("/proc/uptime")
	if err1 != nil || err2 != nil {
		return now
	}
	// The command name (field 2) may hold spaces: fields count from the
	// last ')'. starttime is field 22, in clock ticks (USER_HZ, 100 on
	// Linux) since boot.
	rest := stat[strings.LastIndexByte(string(stat), ')')+1:]
	f := strings.Fields(string(rest))
	upf := strings.Fields(string(up))
	if len(f) < 20 || len(upf) < 1 {
		return now
	}
	ticks, err1 := strconv.ParseInt(f[19], 10, 64)
	uptime, err2 := strconv.ParseFloat(upf[0], 64)
	if err1 != nil || err2 != nil {
		return now
	}
	age := time.Duration(uptime*float64(time.Second)) - time.Duration(ticks)*10*time.Millisecond
	if age < 0 || age > time.Minute {
		return now
	}
	return now.Add(-age)
}

// labelFlags collects repeated -label key:value flags.
type labelFlags []string

func (l *labelFlags) String() string     { return strings.Join(*l, ",") }
func (l *labelFlags) Set(v string) error { *l = append(*l, v); return nil }
