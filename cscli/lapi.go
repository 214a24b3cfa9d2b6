package cscli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/version"
)

// lapiCallTimeout bounds the login of lapi status and the registration.
const lapiCallTimeout = 30 * time.Second

// normalizeAPIURL adds the scheme and the trailing slash users leave out;
// a path starting with "/" is a unix socket and is kept as is.
func normalizeAPIURL(u string) string {
	u = strings.TrimSpace(u)
	if strings.HasPrefix(u, "/") {
		return u
	}
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = "http://" + u
	}
	if !strings.HasSuffix(u, "/") {
		u += "/"
	}
	return u
}

func newLapiCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:               "lapi [action]",
		Short:             "Manage interaction with Local API (LAPI)",
		DisableAutoGenTag: true,
	}
	cmd.AddCommand(newLapiStatusCmd(cli), newLapiRegisterCmd(cli))
	return cmd
}

func newLapiStatusCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "status",
		Short:             "Check authentication to Local API (LAPI)",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.lapiStatus(cmdContext(cmd))
		},
	}
}

func (cli *CLI) lapiStatus(ctx context.Context) error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	path := cfg.API.Client.CredentialsPath
	creds, err := csconfig.LoadCredentials(path)
	if err != nil {
		return fmt.Errorf("loading api client credentials: %w", err)
	}
	fmt.Fprintf(cli.Out, "Loaded credentials from %s\n", path)
	if creds.CertPath != "" {
		fmt.Fprintf(cli.Out, "Trying to authenticate with client certificate %s on %s\n", creds.CertPath, strings.Join(creds.LAPIURLs(), ", "))
	} else {
		fmt.Fprintf(cli.Out, "Trying to authenticate with username %s on %s\n", creds.Login, strings.Join(creds.LAPIURLs(), ", "))
	}

	ac, err := cfg.LAPIClient(creds)
	if err != nil {
		return err
	}
	ac.UserAgent, ac.Timeout = version.UserAgent("crowdsec"), lapiCallTimeout
	client, err := apiclient.New(ac)
	if err != nil {
		return fmt.Errorf("failed to authenticate to Local API (LAPI): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	if err := client.Login(ctx); err != nil {
		return fmt.Errorf("failed to authenticate to Local API (LAPI): %w", err)
	}
	fmt.Fprintln(cli.Out, "You can successfully interact with Local API (LAPI)")
	return nil
}

type lapiRegisterOpts struct {
	url, file, machine, token, caCert string
}

func newLapiRegisterCmd(cli *CLI) *cobra.Command {
	var o lapiRegisterOpts
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register a machine to Local API (LAPI)",
		Long: `Register your machine to the Local API (LAPI).
Keep in mind the machine needs to be validated by an administrator on LAPI side to be effective.

For a LAPI with TLS, --ca-cert names the CA that signed its certificate (it
is trusted in addition to the system's roots and written to the credentials
as ca_cert_path); the certificate is always verified unless
api.client.insecure_skip_verify is set.`,
		Example: `cscli lapi register --url https://lapi.example.net:8080/ --ca-cert /etc/crowdsec/ssl/ca.pem
cscli lapi register -u https://10.0.0.1:8080 --machine web1 --token <auto-registration token>`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.lapiRegister(cmdContext(cmd), o)
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&o.url, "url", "u", "", "URL of the API (ie. http://127.0.0.1)")
	flags.StringVarP(&o.file, "file", "f", "", "output file destination (defaults to api.client.credentials_path; - for standard output)")
	flags.StringVar(&o.machine, "machine", "", "Name of the machine to register with")
	flags.StringVar(&o.token, "token", "", "Auto registration token to use")
	flags.StringVar(&o.caCert, "ca-cert", "", "PEM file of the CA that signed the LAPI's certificate (written as ca_cert_path)")
	return cmd
}

func (cli *CLI) lapiRegister(ctx context.Context, o lapiRegisterOpts) error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	login := o.machine
	if login == "" {
		if login, err = generateMachineID(); err != nil {
			return fmt.Errorf("unable to generate machine id: %w", err)
		}
	}
	password, err := randomAlnum(machinePasswordLength)
	if err != nil {
		return err
	}

	// Start from the current credentials file, if any, to keep its URL and
	// TLS settings; those of another LAPI are not carried over to a new URL.
	creds := &csconfig.Credentials{}
	if cfg.API.Client.CredentialsPath != "" {
		if cur, err := csconfig.LoadCredentials(cfg.API.Client.CredentialsPath); err == nil {
			creds = cur
		} else if !errors.Is(err, os.ErrNotExist) {
			log.Debugf("ignoring current credentials: %s", err)
		}
	}
	if o.url != "" {
		u := strings.TrimSpace(o.url)
		// a CA file means TLS: a bare host:port is then https
		if o.caCert != "" && !strings.Contains(u, "://") && !strings.HasPrefix(u, "/") {
			u = "https://" + u
		}
		// One of the current LAPIs (urls: several of one database) keeps
		// the list; another LAPI starts afresh.
		if u = normalizeAPIURL(u); !slices.Contains(creds.LAPIURLs(), u) {
			creds = &csconfig.Credentials{URL: u}
		}
	}
	urls := creds.LAPIURLs()
	if urls[0] == "" {
		return errors.New("no Local API URL. Please provide it in your configuration or with the -u parameter")
	}
	// With urls, the registration goes to the first that answers: they
	// share one database.
	target := urls[0]
	if o.caCert != "" {
		for _, u := range urls {
			if !strings.HasPrefix(u, "https://") {
				return fmt.Errorf("--ca-cert is for an https URL, not %s", u)
			}
		}
		// the agent reads the credentials from another directory
		abs, err := filepath.Abs(o.caCert)
		if err != nil {
			return fmt.Errorf("--ca-cert: %w", err)
		}
		creds.CACert = abs
		// crowdsec.service cannot read these (ProtectHome=yes,
		// PrivateTmp=yes): the file works for cscli, not for the agent
		for _, dir := range []string{"/home/", "/root/", "/run/user/", "/tmp/", "/var/tmp/"} {
			if strings.HasPrefix(abs, dir) {
				log.Warnf("%s is under %s, which crowdsec.service cannot read (ProtectHome, PrivateTmp): copy it to /etc/crowdsec/ssl/ and point ca_cert_path of the credentials there", abs, dir)
				break
			}
		}
	}
	if strings.HasPrefix(target, "https://") && csconfig.Bool(cfg.API.Client.InsecureSkipVerify, false) {
		log.Warnf("[api.client] insecure_skip_verify is set in %s: the certificate of %s is not verified, so anyone on the path can pose as the LAPI", cli.ConfigPath, target)
	}
	for _, u := range urls {
		if strings.HasPrefix(u, "http://") && !apiclient.Local(u) {
			log.Warnf("%s is plain http: this machine's password and its alerts cross the network unencrypted; give the LAPI a certificate ([api.server.tls]) and register with an https URL", u)
		}
	}
	creds.Login, creds.Password = login, password

	ac, err := cfg.LAPIClient(creds)
	if err != nil {
		return err
	}
	// Registration sends the new login in its body, never a token.
	ac.MachineID, ac.Password = "", ""
	ac.UserAgent, ac.Timeout = version.UserAgent("crowdsec"), lapiCallTimeout
	client, err := apiclient.New(ac)
	if err != nil {
		return fmt.Errorf("api client register: %w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, lapiCallTimeout)
	defer cancel()
	if err := client.RegisterWatcher(rctx, login, password, o.token); err != nil {
		return fmt.Errorf("api client register: %w%s", err, tlsHint(err))
	}
	log.Info("Successfully registered to Local API (LAPI)")

	dumpFile := o.file
	if dumpFile == "" {
		dumpFile = cfg.API.Client.CredentialsPath
	}
	if dumpFile == "" {
		dumpFile = "-"
	}
	if err := cli.writeCredentials(dumpFile, creds); err != nil {
		return fmt.Errorf("write api credentials to '%s' failed: %w", dumpFile, err)
	}
	if dumpFile != "-" {
		log.Infof("Local API credentials written to '%s'", dumpFile)
	}
	if o.token == "" {
		fmt.Fprintf(cli.Err, "Run 'cscli machines validate %s' on the LAPI host to accept this machine.\n", login)
		fmt.Fprintln(cli.Err, "Until then the agent keeps its alerts queued and retries; it delivers them once validated, without a restart.")
	}
	if dumpFile == cfg.API.Client.CredentialsPath && !apiclient.Local(target) && csconfig.Bool(cfg.API.Server.Enable, true) {
		fmt.Fprintf(cli.Err, "This host's own local API is no longer used: set 'enable = false' in [api.server] of %s.\n", cli.ConfigPath)
	}
	// credentials are read at start only; a reload does not log in again
	log.Warn("Run 'sudo systemctl restart crowdsec' for the new configuration to be effective.")
	return nil
}

// tlsHint says what to do about a certificate the client refused, or a
// URL whose scheme does not match the LAPI's listener.
func tlsHint(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &unknown):
		return " (the LAPI's certificate is signed by a CA this host does not trust: pass that CA with --ca-cert FILE)"
	case errors.As(err, &hostname):
		return " (the LAPI's certificate is not for this address: use the name or address it was issued for in --url)"
	case errors.As(err, &invalid):
		return " (the LAPI's certificate is not valid: check its dates and usage)"
	// net/http's own words for a scheme that does not match the listener
	case strings.Contains(err.Error(), "Client sent an HTTP request to an HTTPS server"):
		return " (the LAPI serves TLS: use an https:// URL)"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return " (the LAPI serves plain http: use an http:// URL, or give it a certificate)"
	}
	return ""
}

// requireLocalAPI refuses the commands that work on the LAPI's database
// (machines, bouncers, allowlists, alerts flush) on a host whose local API
// is disabled: there they would create and fill a database of their own
// that no LAPI reads, as a bouncer key made here would never work.
func (cli *CLI) requireLocalAPI() error {
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	if csconfig.Bool(cfg.API.Server.Enable, true) {
		return nil
	}
	where := "the LAPI host"
	if creds, err := csconfig.LoadCredentials(cfg.API.Client.CredentialsPath); err == nil && !apiclient.Local(creds.LAPIURLs()[0]) {
		where += " (" + strings.Join(creds.LAPIURLs(), ", ") + ")"
	}
	return fmt.Errorf("the local API is disabled on this host ([api.server] enable = false in %s): run this command on %s", cli.ConfigPath, where)
}
