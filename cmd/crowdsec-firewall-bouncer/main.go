// Command crowdsec-firewall-bouncer keeps nftables (or ipset + iptables) in
// sync with the LAPI's decisions. Flags follow upstream's where they exist.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/bouncer"
	"github.com/rampart-ips/rampart/internal/journallog"
	"github.com/rampart-ips/rampart/internal/manpage"
	"github.com/rampart-ips/rampart/internal/memtune"
	"github.com/rampart-ips/rampart/internal/version"
)

func main() {
	if err := run(); err != nil {
		log.WithError(err).Error("crowdsec-firewall-bouncer stopped")
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("crowdsec-firewall-bouncer", flag.ExitOnError)
	cfgPath := fs.String("c", bouncer.DefaultConfigPath, "configuration file")
	testOnly := fs.Bool("t", false, "validate the configuration and exit (never touches the firewall)")
	printCfg := fs.Bool("T", false, "print the effective configuration and exit")
	flush := fs.Bool("flush", false, "delete every firewall object Rampart created, in every mode, and exit")
	debug := fs.Bool("v", false, "log at debug level")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.BoolVar(showVersion, "V", false, "print the version and exit")
	manDir := manpage.Flag(fs)
	_ = fs.Parse(os.Args[1:])
	if *manDir != "" {
		return manpage.WriteFlagPage(*manDir, page, fs, manpage.InfoFromEnv(version.Version))
	}
	if *showVersion {
		return version.Get("crowdsec-firewall-bouncer").Write(os.Stdout)
	}
	textFormat := &log.TextFormatter{FullTimestamp: true}
	log.SetFormatter(textFormat)
	// Under systemd each line gets its journal priority (-p warning).
	journallog.Setup(log.StandardLogger(), os.Stderr)
	cfg, err := bouncer.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *printCfg {
		fmt.Print(cfg.String())
		return nil
	}
	if *testOnly {
		for _, w := range cfg.Warnings() {
			log.Warn(w)
		}
		fmt.Printf("configuration %s is valid (mode %s)\n", *cfgPath, cfg.Mode)
		return nil
	}
	lvl, err := log.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	if *debug {
		lvl = log.DebugLevel
	}
	log.SetLevel(lvl)
	if cfg.LogMode == "file" {
		f, err := os.OpenFile(filepath.Join(cfg.LogDir, "crowdsec-firewall-bouncer.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return fmt.Errorf("opening log file: %w", err)
		}
		defer f.Close()
		log.SetOutput(f)
		log.SetFormatter(textFormat)
	}
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *flush {
		if err := bouncer.FlushAll(ctx, cfg); err != nil {
			return err
		}
		log.Info("removed every firewall object Rampart created")
		return nil
	}

	memtune.ApplyBouncer()
	// SIGHUP reloads the configuration: the bouncer starts over in this
	// process with the new file, as a restart would (the kernel keeps its
	// sets meanwhile and the first sync reconciles them), or, if the file
	// is broken, goes on with the old one and says why.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for reloading := false; ; reloading = true {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- serve(runCtx, cfg, func() {
				if reloading {
					log.Info("configuration reloaded")
					notify(daemon.SdNotifyReady + "\nSTATUS=running")
					return
				}
				notify(daemon.SdNotifyReady)
			})
		}()
	wait:
		for {
			select {
			case err := <-done:
				cancel()
				return err
			case <-hup:
				next, err := bouncer.LoadConfig(*cfgPath)
				if err != nil {
					log.WithError(err).Error("reload failed: the previous configuration keeps running")
					continue
				}
				for _, w := range next.Warnings() {
					log.Warn(w)
				}
				notify(daemon.SdNotifyReloading + "\nSTATUS=reloading")
				cancel()
				if err := <-done; err != nil {
					return err
				}
				cfg = next
				break wait
			}
		}
	}
}

// notify sends state to systemd (Type=notify) when it supervises us.
func notify(state string) {
	if ok, err := daemon.SdNotify(false, state); err != nil {
		log.WithError(err).Warn("sd_notify failed")
	} else if ok {
		log.WithField("state", state).Debug("notified systemd")
	}
}

// serve runs the bouncer with cfg until ctx ends; ready is called after
// the first sync.
func serve(ctx context.Context, cfg *bouncer.Config, ready func()) error {
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	bouncer.RemoveOtherModes(ctx, cfg)
	fw, err := bouncer.NewBackend(cfg)
	if err != nil {
		return err
	}
	defer fw.Close()
	log.WithFields(log.Fields{"mode": cfg.Mode, "lapi": strings.Join(cfg.LAPIURLs(), ", "), "deny_action": cfg.DenyAction}).Info("starting")
	m := bouncer.NewMetrics(fw)
	if cfg.Prometheus.Enabled {
		addr := net.JoinHostPort(cfg.Prometheus.ListenAddr, strconv.Itoa(cfg.Prometheus.ListenPort))
		srv := &http.Server{Addr: addr, Handler: promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.WithError(err).Error("metrics listener stopped")
			}
		}()
		defer srv.Close()
	}
	b := bouncer.New(cfg, fw, client, m)
	err = b.Run(ctx, ready)
	log.Info("stopping; firewall rules stay in place (elements expire by their own timeouts)")
	return err
}

func newClient(cfg *bouncer.Config) (*apiclient.Client, error) {
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: cfg.CACertPath, CertPath: cfg.CertPath, KeyPath: cfg.KeyPath,
		InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, err
	}
	return apiclient.New(apiclient.Config{URLs: cfg.LAPIURLs(), APIKey: cfg.APIKey, Bouncer: true, TLS: tc,
		UserAgent: "crowdsec-firewall-bouncer/" + version.Version, Timeout: cfg.RequestTimeout.Duration})
}
