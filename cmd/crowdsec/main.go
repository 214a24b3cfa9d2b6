// Command crowdsec is Rampart's daemon: the local API (and, in later
// milestones, the log-processing agent). Flags follow upstream's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi"
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
	_ = fs.Bool("no-capi", true, "accepted for compatibility: Rampart has no central API")
	levels := map[string]*bool{}
	for _, l := range []string{"trace", "debug", "info", "warning", "error", "fatal"} {
		levels[l] = fs.Bool(l, false, "log at "+l+" level")
	}
	_ = fs.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println("crowdsec (Rampart) " + version.Version)
		return nil
	}
	log.SetFormatter(&log.TextFormatter{FullTimestamp: true})
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
	}
	prof, err := profiles.Load(cfg.API.Server.ProfilesPath)
	if err != nil {
		return fmt.Errorf("loading profiles: %w", err)
	}
	if *testOnly {
		fmt.Printf("configuration %s is valid (%d profiles)\n", *cfgPath, len(prof.Names()))
		return nil
	}
	if *noAPI {
		return fmt.Errorf("-no-api: the agent is not part of this build yet; run the LAPI with -no-cs")
	}
	if !*noCS && csconfig.Bool(cfg.Crowdsec.Enable, true) {
		log.Warn("the log-processing agent is not part of this build yet: running the local API only")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, store.Config{Type: cfg.DBConfig.Type, Path: cfg.DBConfig.DBPath,
		MaxOpenConns: cfg.DBConfig.MaxOpenConns, BusyTimeout: cfg.DBConfig.BusyTimeout.Duration})
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := lapi.New(ctx, cfg, st, prof)
	if err != nil {
		return err
	}
	return srv.Run(ctx, func() {
		if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			log.WithError(err).Warn("sd_notify failed")
		} else if ok {
			log.Debug("notified systemd: ready")
		}
	})
}
