package capi

import (
	"errors"
	"fmt"
	"os"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/version"
	"github.com/rampart-ips/rampart/lapi/store"
)

// Setup reads [api.server.online_client], its credentials file and
// console.yaml, and builds the service and the signal policy (nil when
// sharing is off). It returns a nil service when the Central API is off:
// no online_client, or credentials missing or incomplete (a warning, as
// upstream; packages ship an empty file). Broken files are errors.
func Setup(cfg *csconfig.Config, st *store.Store, filter FilterFunc) (*Service, *SharePolicy, error) {
	return setup(cfg, st, filter, nil)
}

// setup is Setup logging to lg (nil: the standard logger).
func setup(cfg *csconfig.Config, st *store.Store, filter FilterFunc, lg *log.Entry) (*Service, *SharePolicy, error) {
	if lg == nil {
		lg = log.NewEntry(log.StandardLogger())
	}
	lg = lg.WithField("component", "capi")
	oc := cfg.API.Server.OnlineClient
	if oc == nil {
		lg.Info("no [api.server.online_client]: push and pull to Central API disabled")
		return nil, nil, nil
	}
	creds, err := csconfig.LoadCAPICredentials(oc.CredentialsPath)
	var inc *csconfig.IncompleteCAPICredentialsError
	switch {
	case errors.As(err, &inc), errors.Is(err, os.ErrNotExist):
		lg.WithError(err).Warn("push and pull to Central API disabled ('cscli capi register' writes the credentials)")
		return nil, nil, nil
	case err != nil:
		return nil, nil, err
	}
	console, err := csconfig.LoadConsole(cfg.API.Server.ConsolePath)
	if err != nil {
		return nil, nil, err
	}
	client, err := NewClient(ClientConfig{URL: creds.URL, Login: creds.Login, Password: creds.Password,
		Scenarios: st.MachineScenarios, Tokens: st, Log: lg})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", oc.CredentialsPath, err)
	}
	sharing := csconfig.Bool(oc.Sharing, true)
	pol := &SharePolicy{Console: console}
	svc := New(Options{UsageMetrics: !cfg.API.Server.DisableUsageMetricsExport, ConsoleOptions: consoleOptions(pol, console.Management), Client: client, Store: st, Filter: filter, Sharing: sharing,
		PullCommunity: csconfig.Bool(oc.Pull.Community, true), PullBlocklists: csconfig.Bool(oc.Pull.Blocklists, true),
		QueueMax: oc.SignalQueueMax, PAPIURL: creds.PAPIURL, ShareDeletions: console.Manual || console.Management, Version: version.Version, Log: lg})
	if !sharing {
		pol = nil
	}
	lg.WithFields(log.Fields{"url": creds.URL, "login": creds.Login, "sharing": sharing}).Info("Central API client configured")
	return svc, pol, nil
}
