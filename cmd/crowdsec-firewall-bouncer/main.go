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
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/bouncer"
	"github.com/rampart-ips/rampart/internal/manpage"
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
		fmt.Println("crowdsec-firewall-bouncer (Rampart) " + version.Version)
		return nil
	}
	log.SetFormatter(&log.TextFormatter{FullTimestamp: true})
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
	log.WithFields(log.Fields{"mode": cfg.Mode, "lapi": cfg.APIURL, "deny_action": cfg.DenyAction}).Info("starting")
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
	err = b.Run(ctx, func() {
		if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			log.WithError(err).Warn("sd_notify failed")
		} else if ok {
			log.Debug("notified systemd: ready")
		}
	})
	log.Info("stopping; firewall rules stay in place (elements expire by their own timeouts)")
	return err
}

func newClient(cfg *bouncer.Config) (*apiclient.Client, error) {
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: cfg.CACertPath, CertPath: cfg.CertPath, KeyPath: cfg.KeyPath,
		InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, err
	}
	return apiclient.New(apiclient.Config{URL: cfg.APIURL, APIKey: cfg.APIKey, Bouncer: true, TLS: tc,
		UserAgent: "crowdsec-firewall-bouncer/" + version.Version, Timeout: cfg.RequestTimeout.Duration})
}
