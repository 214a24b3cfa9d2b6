package cscli

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/lapi/store"
)

// Bounds of a support dump: it must stay small enough to mail and quick
// to make on a machine in trouble.
const (
	supportLogTail       = 2 << 20 // last bytes of each log file
	supportFetchTimeout  = 5 * time.Second
	supportJournalLimit  = 4 << 20
	supportJournalWait   = 20 * time.Second
	supportCommandWait   = 20 * time.Second
	supportDefaultOutput = "/tmp/crowdsec-support.zip"
)

func newSupportCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "support [action]",
		Short: "Provide commands to help during support",
		Long: `Collect what a support request needs, without secrets (see cscli support
dump --help).`,
		Example:           "cscli support dump -f /tmp/crowdsec-support.zip",
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
	}
	var out string
	var journalLines int
	dump := &cobra.Command{
		Use:   "dump",
		Short: "Dump all your configuration to a zip file for easier support",
		Long: `Dump the information a support request needs into one zip file:
- versions and OS (version.txt, os.txt)
- the configuration: the effective one and the files (config.toml, profiles,
  simulation, acquisition, notification, bouncer and credentials files)
- the Prometheus metrics of crowdsec and of the firewall bouncer, when they
  answer, and cscli metrics
- recent logs: the end of each crowdsec*.log in common.log_dir, and the last
  journal lines of the crowdsec and crowdsec-firewall-bouncer units
- hub state, bouncers and machines lists, simulation and LAPI status

Secrets are never included: passwords, API and bouncer keys, tokens and the
JWT secret are replaced by ********, wherever they appear, and TLS key files
are not read. What could not be collected is listed in errors.txt.`,
		Example: `cscli support dump
cscli support dump -f /tmp/crowdsec-support.zip`,
		Args:              cobra.NoArgs,
		DisableAutoGenTag: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			if journalLines < 0 {
				return errors.New("--journal-lines must not be negative")
			}
			return cli.supportDump(cmdContext(cmd), out, journalLines)
		},
	}
	dump.Flags().StringVarP(&out, "outFile", "f", supportDefaultOutput, "the file to write the zip to")
	dump.Flags().IntVar(&journalLines, "journal-lines", 2000, "journal lines per unit (0: none)")
	cmd.AddCommand(dump)
	return cmd
}

// dumpEntry is one file of the zip.
type dumpEntry struct {
	name string
	data []byte
}

// supportDumper collects entries, the secrets met on the way and what
// failed.
type supportDumper struct {
	cli     *CLI
	cfg     *csconfig.Config
	entries []dumpEntry
	secrets []string
	errs    []string
}

func (d *supportDumper) add(name string, data []byte) {
	d.entries = append(d.entries, dumpEntry{name, data})
}

func (d *supportDumper) fail(what string, err error) {
	d.errs = append(d.errs, fmt.Sprintf("%s: %v", what, err))
}

func (cli *CLI) supportDump(ctx context.Context, out string, journalLines int) error {
	d := &supportDumper{cli: cli, cfg: cli.cfg}
	d.collect(ctx, journalLines)
	if err := d.write(out); err != nil {
		return err
	}
	fmt.Fprintf(cli.Out, "Written zip file to %s\n", out)
	for _, e := range d.errs {
		fmt.Fprintf(cli.Err, "warning: %s\n", e)
	}
	return nil
}

func (d *supportDumper) collect(ctx context.Context, journalLines int) {
	cfg := d.cfg
	var b bytes.Buffer
	if err := d.cli.versionInfo().Write(&b); err != nil {
		d.fail("version", err)
	}
	d.add("version.txt", b.Bytes())
	d.add("os.txt", osInfo())

	// Configuration: the effective one, then each file redacted.
	if tree, err := effectiveConfig(cfg, &d.secrets); err != nil {
		d.fail("effective configuration", err)
	} else {
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(tree); err != nil {
			d.fail("effective configuration", err)
		}
		d.add("config/config.effective.toml", b.Bytes())
	}
	d.addTOML("config/config.toml", cfg.Path)
	d.addTOML("config/local_api_credentials.toml", cfg.API.Client.CredentialsPath)
	d.addTOML("config/profiles.toml", cfg.API.Server.ProfilesPath)
	d.addTOML("config/profiles.toml.local", cfg.API.Server.ProfilesPath+".local")
	d.addTOML("config/simulation.toml", cfg.ConfigPaths.SimulationPath)
	d.addDir("config/acquis.d", cfg.Crowdsec.AcquisitionDir, "*.toml")
	d.addDir("config/notifications", cfg.ConfigPaths.NotificationDir, "*.toml", "*.yaml", "*.yml")
	bouncerFiles := d.addDir("config/bouncers", filepath.Join(cfg.ConfigPaths.ConfigDir, "bouncers"), "*.toml")
	d.jwtSecret(ctx)

	// Metrics, from the daemons themselves.
	d.fetch(ctx, "metrics/crowdsec.prom", "http://"+net.JoinHostPort(cfg.Prometheus.ListenAddr, strconv.Itoa(cfg.Prometheus.ListenPort))+"/metrics")
	for _, f := range bouncerFiles {
		if u := bouncerMetricsURL(f); u != "" {
			d.fetch(ctx, "metrics/"+strings.TrimSuffix(filepath.Base(f), ".toml")+".prom", u)
		}
	}

	// Logs.
	logs, _ := filepath.Glob(filepath.Join(cfg.Common.LogDir, "crowdsec*.log"))
	sort.Strings(logs)
	for _, f := range logs {
		if data, err := tailFile(f, supportLogTail); err != nil {
			d.fail("log "+f, err)
		} else {
			d.add("logs/"+filepath.Base(f), data)
		}
	}
	if journalLines > 0 {
		for _, unit := range []string{"crowdsec", "crowdsec-firewall-bouncer"} {
			d.journal(ctx, unit, journalLines)
		}
	}

	// What cscli itself says.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"cscli/hub-list.txt", []string{"hub", "list"}},
		{"cscli/bouncers-list.txt", []string{"bouncers", "list"}},
		{"cscli/machines-list.txt", []string{"machines", "list"}},
		{"cscli/simulation-status.txt", []string{"simulation", "status"}},
		{"cscli/metrics.txt", []string{"metrics"}},
		{"cscli/lapi-status.txt", []string{"lapi", "status"}},
	} {
		if (c.args[0] == "bouncers" || c.args[0] == "machines") && !fileExists(cfg.DBConfig.DBPath) {
			d.fail("cscli "+strings.Join(c.args, " "), fmt.Errorf("no database at %s", cfg.DBConfig.DBPath))
			continue // opening it would create it
		}
		d.cscli(ctx, c.name, c.args...)
	}
	if len(d.errs) > 0 {
		d.add("errors.txt", []byte(strings.Join(d.errs, "\n")+"\n"))
	}
}

// addTOML adds a TOML file (or a YAML one, by its name) with its secrets
// redacted; a missing file is left out. A file that does not parse is
// left out too (it could hide a secret where the redaction cannot see
// it), and said so.
func (d *supportDumper) addTOML(name, path string) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		d.fail(path, err)
		return
	}
	redact := redactTOML
	if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
		redact = redactYAML
	}
	red, err := redact(data, &d.secrets)
	if err != nil {
		d.fail(path+" (left out)", err)
		return
	}
	d.add(name, append([]byte("# "+path+", secrets redacted\n"), red...))
}

// addDir adds a folder's files matching the patterns and returns their
// paths.
func (d *supportDumper) addDir(prefix, dir string, patterns ...string) []string {
	var files []string
	for _, p := range patterns {
		m, _ := filepath.Glob(filepath.Join(dir, p))
		files = append(files, m...)
	}
	sort.Strings(files)
	for _, f := range files {
		d.addTOML(prefix+"/"+filepath.Base(f), f)
	}
	return files
}

// jwtSecret adds the LAPI's JWT secret to the secrets scrubbed: it lives in
// the database, which is never dumped, but a log line could carry it.
func (d *supportDumper) jwtSecret(ctx context.Context) {
	if !fileExists(d.cfg.DBConfig.DBPath) {
		return // do not create a database just to read it
	}
	st, err := d.cli.Store(ctx)
	if err != nil {
		d.fail("database", err)
		return
	}
	defer st.Close()
	if v, err := st.GetKV(ctx, "jwt_secret"); err == nil {
		d.secrets = append(d.secrets, v)
	} else if !errors.Is(err, store.ErrNotFound) {
		d.fail("database", err)
	}
}

// fetch adds what url answers, if it answers.
func (d *supportDumper) fetch(ctx context.Context, name, url string) {
	ctx, cancel := context.WithTimeout(ctx, supportFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		d.fail(url, err)
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.fail("metrics", err)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		d.fail(url, err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		d.fail(url, fmt.Errorf("HTTP %s", resp.Status))
		return
	}
	d.add(name, body)
}

// bouncerMetricsURL reads a bouncer configuration's metrics listener; ""
// when its metrics are off.
func bouncerMetricsURL(path string) string {
	var c struct {
		Prometheus struct {
			Enabled    bool   `toml:"enabled"`
			ListenAddr string `toml:"listen_addr"`
			ListenPort int    `toml:"listen_port"`
		} `toml:"prometheus"`
	}
	if _, err := toml.DecodeFile(path, &c); err != nil || !c.Prometheus.Enabled || c.Prometheus.ListenPort == 0 {
		return ""
	}
	addr := c.Prometheus.ListenAddr
	if addr == "" || addr == "0.0.0.0" || addr == "::" {
		addr = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(addr, strconv.Itoa(c.Prometheus.ListenPort)) + "/metrics"
}

// journal adds a unit's last journal lines, when journalctl is there.
func (d *supportDumper) journal(ctx context.Context, unit string, lines int) {
	path, err := exec.LookPath("journalctl")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, supportJournalWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-u", unit, "-n", strconv.Itoa(lines), "--no-pager", "-o", "short-iso")
	var out limitedBuffer
	out.max = supportJournalLimit
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		d.fail("journalctl -u "+unit, err)
	}
	if out.Len() > 0 {
		d.add("logs/journal-"+unit+".txt", out.Bytes())
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cscli adds the output of one of cscli's own commands.
func (d *supportDumper) cscli(ctx context.Context, name string, args ...string) {
	ctx, cancel := context.WithTimeout(ctx, supportCommandWait)
	defer cancel()
	// the command points the logger at its buffer; point it back after
	defer log.SetOutput(d.cli.Err)
	var out bytes.Buffer
	root := newRootCommandWith(&out, &out, strings.NewReader(""))
	root.SetArgs(append([]string{"-c", d.cli.ConfigPath, "--color", "no"}, args...))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(&out, "\nError: %v\n", err)
		d.fail("cscli "+strings.Join(args, " "), err)
	}
	d.add(name, out.Bytes())
}

// write scrubs every secret met from every entry, wherever it appears,
// and writes the zip (mode 0600) in one go.
func (d *supportDumper) write(out string) error {
	var pairs []string
	seen := map[string]bool{}
	for _, s := range d.secrets {
		// very short values would scrub ordinary text and say little
		if len(s) >= 4 && s != redacted && !seen[s] {
			seen[s] = true
			pairs = append(pairs, s, redacted)
		}
	}
	scrub := strings.NewReplacer(pairs...)
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(out), err)
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", out, err)
	}
	zw := zip.NewWriter(f)
	now := time.Now()
	for _, e := range d.entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: now})
		if err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", out, err)
		}
		data := e.data
		if len(pairs) > 0 {
			data = []byte(scrub.Replace(string(data)))
		}
		if _, err := w.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("writing %s: %w", out, err)
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return nil
}

// osInfo is the OS release, kernel and platform.
func osInfo() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "platform: %s/%s, %d CPUs\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	if v, err := os.ReadFile("/proc/version"); err == nil {
		fmt.Fprintf(&b, "kernel: %s", v)
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if v, err := os.ReadFile(p); err == nil {
			fmt.Fprintf(&b, "\n%s:\n%s", p, v)
			break
		}
	}
	return b.Bytes()
}

// tailFile reads the last max bytes of a file, from a line start.
func tailFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := st.Size() - max
	if off <= 0 {
		return io.ReadAll(io.LimitReader(f, max))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	return data, nil
}

// limitedBuffer keeps the first max bytes written and drops the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.Len(); room > 0 {
		l.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
