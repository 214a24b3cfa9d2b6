package csconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// DefaultSignalQueueMax bounds the signals waiting for the Central API: a
// week of a busy LAPI's alerts, a few hundred MB at most.
const DefaultSignalQueueMax = 100000

// DefaultCAPIURL is the Central API cscli registers with.
const DefaultCAPIURL = "https://api.crowdsec.net/"

// DefaultPAPIURL fills an empty papi_url, as upstream.
const DefaultPAPIURL = "https://papi.api.crowdsec.net/"

// OnlineClient is [api.server.online_client], upstream's keys.
type OnlineClient struct {
	CredentialsPath string     `toml:"credentials_path"`
	Sharing         *bool      `toml:"sharing"`
	Pull            OnlinePull `toml:"pull"`
	// SignalQueueMax is Rampart's: how many signals may wait for CAPI
	// (in the database); beyond it the oldest go, counted in a warning.
	SignalQueueMax int `toml:"signal_queue_max"`
}

// OnlinePull says what the community pull asks for.
type OnlinePull struct {
	Community  *bool `toml:"community"`
	Blocklists *bool `toml:"blocklists"`
}

// CAPICredentials is upstream's online_api_credentials.yaml.
type CAPICredentials struct {
	URL      string `yaml:"url"`
	Login    string `yaml:"login"`
	Password string `yaml:"password"`
	PAPIURL  string `yaml:"papi_url,omitempty"`
	// Parsed as upstream does, and unused for CAPI as there.
	CACertPath string `yaml:"ca_cert_path,omitempty"`
	CertPath   string `yaml:"cert_path,omitempty"`
	KeyPath    string `yaml:"key_path,omitempty"`
}

// IncompleteCAPICredentialsError is a credentials file without a login,
// password or url: packages ship it empty, so it turns CAPI off (with a
// warning) rather than being fatal.
type IncompleteCAPICredentialsError struct{ Path, Field string }

func (e *IncompleteCAPICredentialsError) Error() string {
	return fmt.Sprintf("can't load CAPI credentials from '%s' (missing %s field)", e.Path, e.Field)
}

// LoadCAPICredentials reads the Central API credentials: YAML, an unknown
// key is an error. A missing field gives *IncompleteCAPICredentialsError.
func LoadCAPICredentials(path string) (*CAPICredentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CAPI credentials: %w", err)
	}
	var c CAPICredentials
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("CAPI credentials %s: %w", path, err)
	}
	for _, f := range []struct{ name, v string }{{"login", c.Login}, {"password", c.Password}, {"url", c.URL}} {
		if f.v == "" {
			return nil, &IncompleteCAPICredentialsError{Path: path, Field: f.name}
		}
	}
	if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
		return nil, fmt.Errorf("CAPI credentials %s: url %q: want an http(s) URL", path, c.URL)
	}
	// Upstream's request builder refuses a base without it; Rampart adds it.
	if !strings.HasSuffix(c.URL, "/") {
		c.URL += "/"
	}
	if c.PAPIURL == "" {
		c.PAPIURL = DefaultPAPIURL
	}
	if !strings.HasSuffix(c.PAPIURL, "/") {
		c.PAPIURL += "/"
	}
	return &c, nil
}

// WriteCAPICredentials writes url, login and password (mode 0600); "-"
// writes to stdout.
func WriteCAPICredentials(path string, c *CAPICredentials, stdout io.Writer) error {
	out := struct {
		URL      string `yaml:"url"`
		Login    string `yaml:"login"`
		Password string `yaml:"password"`
	}{c.URL, c.Login, c.Password}
	data, err := yaml.Marshal(out)
	if err != nil {
		return fmt.Errorf("encoding CAPI credentials: %w", err)
	}
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.WriteBytes(path, data, 0o600); err != nil {
		return fmt.Errorf("writing CAPI credentials: %w", err)
	}
	return nil
}

// Console is upstream's console.yaml: what is shared with CAPI.
type Console struct {
	ShareManualDecisions *bool `yaml:"share_manual_decisions"`
	ShareCustom          *bool `yaml:"share_custom"`
	ShareTainted         *bool `yaml:"share_tainted"`
	ShareContext         *bool `yaml:"share_context"`
	ConsoleManagement    *bool `yaml:"console_management"`
}

// ConsoleOptions are the console options with their defaults applied.
type ConsoleOptions struct {
	Manual, Custom, Tainted, Context, Management bool
}

// ConsoleOptionNames are cscli's names of the console options, in
// upstream's order ("all" stands for every one of them).
var ConsoleOptionNames = []string{"custom", "manual", "tainted", "context", "console_management"}

// Option points at the option cscli calls name (nil for an unknown name).
func (o *ConsoleOptions) Option(name string) *bool {
	switch name {
	case "custom":
		return &o.Custom
	case "manual":
		return &o.Manual
	case "tainted":
		return &o.Tainted
	case "context":
		return &o.Context
	case "console_management":
		return &o.Management
	}
	return nil
}

// WriteConsole writes console.yaml with every key set (mode 0600), as
// upstream's cscli rewrites it.
func WriteConsole(path string, o ConsoleOptions) error {
	data, err := yaml.Marshal(Console{ShareManualDecisions: &o.Manual, ShareCustom: &o.Custom, ShareTainted: &o.Tainted,
		ShareContext: &o.Context, ConsoleManagement: &o.Management})
	if err != nil {
		return fmt.Errorf("encoding console options: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := atomicfile.WriteBytes(path, data, 0o600); err != nil {
		return fmt.Errorf("writing console options: %w", err)
	}
	return nil
}

// LoadConsole reads console.yaml; a missing file or key takes upstream's
// default (custom and tainted shared, manual and context not).
func LoadConsole(path string) (ConsoleOptions, error) {
	var c Console
	data, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return ConsoleOptions{}, fmt.Errorf("reading console options: %w", err)
	default:
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
			return ConsoleOptions{}, fmt.Errorf("console options %s: %w", path, err)
		}
	}
	return ConsoleOptions{Manual: Bool(c.ShareManualDecisions, false), Custom: Bool(c.ShareCustom, true),
		Tainted: Bool(c.ShareTainted, true), Context: Bool(c.ShareContext, false), Management: Bool(c.ConsoleManagement, false)}, nil
}
