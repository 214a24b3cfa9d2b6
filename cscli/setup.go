package cscli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	log "github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/agent/acquisition"
	"github.com/rampart-ips/rampart/agent/hub"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/atomicfile"
)

// setupDigestPrefix starts the header line holding the digest of what
// follows it: a file whose body no longer matches was edited by hand.
const setupDigestPrefix = "# setup-sha256: "

// setupProbeTimeout bounds one `systemctl is-active`, so that a wedged
// systemd cannot hang a package install that runs setup.
const setupProbeTimeout = 5 * time.Second

// setupService is a service cscli setup knows how to find and read.
type setupService struct {
	name     string
	units    []string // systemd units, the one whose name the journal records first
	procs    []string // names in /proc/PID/comm
	binaries []string
	label    string // labels.type of its sources
	// collections are the Rampart collections whose rules read its logs
	// (none: acquisition is still written, for hub collections).
	collections []string
	// logs lists its log files on the probed system, grouped by kind.
	logs func(p *setupProbe) []setupSource
	// journal: with no log file, read the journal of its unit instead
	// (sshd logs there only when no syslog daemon writes auth.log).
	journal bool
}

// setupServices lists what setup looks for, in output order.
func setupServices() []setupService {
	return []setupService{
		{
			name: "sshd", units: []string{"ssh.service", "sshd.service"}, procs: []string{"sshd"},
			binaries: []string{"/usr/sbin/sshd", "/usr/bin/sshd"}, label: "syslog",
			collections: []string{"rampart/linux", "rampart/sshd"}, journal: true,
			logs: func(p *setupProbe) []setupSource {
				var files []string
				for _, f := range []string{"/var/log/auth.log", "/var/log/secure"} {
					if p.regular(f) {
						files = append(files, f)
					}
				}
				if files == nil {
					return nil
				}
				return []setupSource{{comment: "sshd messages, through the syslog daemon", kind: "file", filenames: files}}
			},
		},
		{
			name: "nginx", units: []string{"nginx.service"}, procs: []string{"nginx"},
			binaries: []string{"/usr/sbin/nginx", "/usr/bin/nginx"}, label: "nginx",
			collections: []string{"rampart/linux", "rampart/nginx", "rampart/base-http"},
			logs: func(p *setupProbe) []setupSource {
				return p.dirLogs("/var/log/nginx", "*access*.log", "*error*.log", "*.log")
			},
		},
		{
			name: "apache2", units: []string{"apache2.service", "httpd.service"}, procs: []string{"apache2", "httpd"},
			binaries: []string{"/usr/sbin/apache2", "/usr/sbin/httpd"}, label: "apache2",
			logs: func(p *setupProbe) []setupSource {
				// Debian names its logs access.log, Red Hat access_log.
				return append(p.dirLogs("/var/log/apache2", "*access*.log", "*error*.log", "*.log"),
					p.dirLogs("/var/log/httpd", "*access_log", "*error_log", "")...)
			},
		},
	}
}

// setupSource is one [[source]] table setup writes.
type setupSource struct {
	comment   string
	kind      string // "file" or "journalctl"
	filenames []string
	filters   []string
}

// describe is the source in one line of output.
func (s setupSource) describe() string {
	if s.kind == "journalctl" {
		return "journal " + strings.Join(s.filters, " ")
	}
	return strings.Join(s.filenames, ", ")
}

// setupProbe answers questions about the system under root.
type setupProbe struct {
	ctx  context.Context
	root string
	// live: root is "/", so systemctl and /proc describe the probed
	// system; under another root they describe the host and are skipped.
	live      bool
	systemctl bool
	comms     map[string]bool // names of the running processes
}

func newSetupProbe(ctx context.Context, root string) *setupProbe {
	p := &setupProbe{ctx: ctx, root: root, live: root == "/"}
	if !p.live {
		return p
	}
	// systemctl answers "inactive" for everything when systemd is not
	// PID 1 (containers); /run/systemd/system tells the two apart.
	if _, err := exec.LookPath("systemctl"); err == nil && p.isDir("/run/systemd/system") {
		p.systemctl = true
	}
	p.comms = map[string]bool{}
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, f := range comms {
		if b, err := os.ReadFile(f); err == nil {
			p.comms[strings.TrimSpace(string(b))] = true
		}
	}
	return p
}

// path maps a path of the probed system to the host.
func (p *setupProbe) path(sys string) string { return filepath.Join(p.root, sys) }

func (p *setupProbe) exists(sys string) bool {
	_, err := os.Stat(p.path(sys))
	return err == nil
}

func (p *setupProbe) isDir(sys string) bool {
	fi, err := os.Stat(p.path(sys))
	return err == nil && fi.IsDir()
}

// regular is true for a regular file, not for a symlink to /dev/stdout
// as container images make of their logs.
func (p *setupProbe) regular(sys string) bool {
	fi, err := os.Stat(p.path(sys))
	return err == nil && fi.Mode().IsRegular()
}

func (p *setupProbe) unitActive(unit string) bool {
	if !p.systemctl {
		return false
	}
	ctx, cancel := context.WithTimeout(p.ctx, setupProbeTimeout)
	defer cancel()
	return exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", unit).Run() == nil
}

// journald reports whether the probed system keeps a journal.
func (p *setupProbe) journald() bool {
	return p.exists("/run/systemd/journal") || p.isDir("/var/log/journal")
}

// unitFile returns the first of units installed as a real unit file.
// Aliases are symlinks (Debian's sshd.service points to ssh.service) and
// skipping them keeps the name the journal records in _SYSTEMD_UNIT.
func (p *setupProbe) unitFile(units []string) string {
	for _, u := range units {
		for _, d := range []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
			if fi, err := os.Lstat(p.path(filepath.Join(d, u))); err == nil && fi.Mode().IsRegular() {
				return u
			}
		}
	}
	return ""
}

// dirLogs splits the logs of dir into access and error sources by name:
// the globs when they match, plus the other files matching anyGlob
// (virtual host logs). A log directory holding no log yet gets the globs,
// which the file source waits on.
func (p *setupProbe) dirLogs(dir, accessGlob, errorGlob, anyGlob string) []setupSource {
	if !p.isDir(dir) {
		return nil
	}
	entries, _ := os.ReadDir(p.path(dir))
	var access, errs []string
	var accessHit, errorHit bool
	for _, e := range entries {
		n := e.Name()
		if !p.regular(filepath.Join(dir, n)) {
			continue
		}
		isAccess, _ := filepath.Match(accessGlob, n)
		isError, _ := filepath.Match(errorGlob, n)
		other := false
		if anyGlob != "" {
			other, _ = filepath.Match(anyGlob, n)
		}
		switch {
		case isAccess:
			accessHit = true
		case isError:
			errorHit = true
		case other && strings.Contains(n, "error"):
			errs = append(errs, filepath.Join(dir, n))
		case other:
			access = append(access, filepath.Join(dir, n))
		}
	}
	none := !accessHit && !errorHit && access == nil && errs == nil
	if accessHit || none {
		access = append([]string{filepath.Join(dir, accessGlob)}, access...)
	}
	if errorHit || none {
		errs = append([]string{filepath.Join(dir, errorGlob)}, errs...)
	}
	var out []setupSource
	if access != nil {
		out = append(out, setupSource{comment: "access logs", kind: "file", filenames: access})
	}
	if errs != nil {
		out = append(out, setupSource{comment: "error logs", kind: "file", filenames: errs})
	}
	return out
}

// setupResult is what setup found and did for one service.
type setupResult struct {
	Service     string            `json:"service"`
	Detected    bool              `json:"detected"`
	How         string            `json:"how,omitempty"`
	Logs        []string          `json:"logs,omitempty"`
	File        string            `json:"file,omitempty"`
	Status      string            `json:"status,omitempty"`
	Collections map[string]string `json:"collections,omitempty"` // name -> status
	Notes       []string          `json:"notes,omitempty"`

	svc     setupService
	unit    string // the systemd unit found active, if any
	sources []setupSource
}

// Statuses of an acquisition file.
const (
	setupWritten      = "written"
	setupUpdated      = "updated"
	setupUnchanged    = "unchanged"
	setupKeptEdited   = "kept: edited by hand (--force to overwrite)"
	setupOverwritten  = "overwritten (--force)"
	setupWouldWrite   = "would write"
	setupWouldUpdate  = "would update"
	setupWouldForce   = "would overwrite (--force)"
	setupCovered      = "not written: already read by another acquisition file"
	setupNoLogs       = "not written: no log found"
	setupWriteFailure = "error"
)

type setupOptions struct {
	root, acquisDir string
	dryRun, force   bool
	configGiven     bool // -c on the command line
}

func newSetupCmd(cli *CLI) *cobra.Command {
	var o setupOptions
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Detect services (sshd, nginx, apache2) and write their acquisition",
		Long: `Detect sshd, nginx and apache2 (active systemd unit, running process or
installed binary), find their logs (files, else the journal for sshd) and
write <acquis-dir>/setup.<service>.toml for each, then make sure the
collections reading them are enabled. Logs another acquisition file
already reads are left to it. A file edited since setup wrote it is kept
unless --force. Running setup again changes nothing that is up to date.

--root DIR probes the system under DIR (a chroot): its files, its
configuration (DIR/etc/crowdsec/config.toml unless -c) and the paths that
configuration names; systemctl and /proc are only asked when DIR is /.
-c and --acquis-dir are taken as given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cli.bindIO(cmd)
			o.configGiven = cmd.Flags().Changed("config")
			return cli.setup(cmdContext(cmd), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.dryRun, "dry-run", false, "show what would be written and installed, change nothing")
	f.StringVar(&o.root, "root", "/", "probe the system under this directory")
	f.StringVar(&o.acquisDir, "acquis-dir", "", "where to write (default: crowdsec_service.acquisition_dir)")
	f.BoolVar(&o.force, "force", false, "overwrite acquisition files edited since setup wrote them")
	return cmd
}

func (cli *CLI) setup(ctx context.Context, o setupOptions) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return fmt.Errorf("--root: %w", err)
	}
	if !o.configGiven && root != "/" {
		cli.ConfigPath = filepath.Join(root, csconfig.DefaultPath)
	}
	cfg, err := cli.Config()
	if err != nil {
		return err
	}
	// The configuration's paths are those of the system under root.
	inRoot := func(p string) string { return filepath.Join(root, p) }
	acquisDir := o.acquisDir
	if acquisDir == "" {
		acquisDir = inRoot(cfg.Crowdsec.AcquisitionDir)
	}
	others, err := otherAcquisition(acquisDir)
	if err != nil {
		log.Warnf("cannot tell which logs are already read, writing every detected service: %s", err)
	}

	p := newSetupProbe(ctx, root)
	var results []*setupResult
	var failed []string
	for _, svc := range setupServices() {
		r := &setupResult{Service: svc.name, svc: svc}
		results = append(results, r)
		r.How, r.unit, r.Detected = p.detect(svc)
		if !r.Detected {
			continue
		}
		r.plan(p, others)
		for _, s := range r.sources {
			r.Logs = append(r.Logs, s.describe())
		}
		if r.Status != "" {
			continue // covered or no log: nothing to write
		}
		r.File = filepath.Join(acquisDir, "setup."+svc.name+".toml")
		if err := r.write(o); err != nil {
			r.Status = setupWriteFailure
			r.Notes = append(r.Notes, err.Error())
			failed = append(failed, svc.name)
		}
	}
	if err := cli.setupCollections(cfg, inRoot, results, o.dryRun); err != nil {
		failed = append(failed, "collections")
		log.Error(err)
	}
	if err := cli.printSetup(results, o.dryRun); err != nil {
		return err
	}
	if failed != nil {
		return fmt.Errorf("setup failed for %s", strings.Join(failed, ", "))
	}
	return nil
}

// detect tells whether svc is on the probed system, how it was seen and
// which of its units is active.
func (p *setupProbe) detect(svc setupService) (how, unit string, ok bool) {
	for _, u := range svc.units {
		if p.unitActive(u) {
			return "systemd unit " + u + " active", u, true
		}
	}
	for _, c := range svc.procs {
		if p.comms[c] {
			return "process " + c + " running", "", true
		}
	}
	for _, b := range svc.binaries {
		if p.regular(b) {
			return "binary " + b, "", true
		}
	}
	return "", "", false
}

// journalUnit picks the unit whose journal setup reads: the active one,
// else the one installed, else every candidate (journalctl ORs matches
// on the same field).
func (p *setupProbe) journalUnit(svc setupService, active string) []string {
	if active != "" {
		return []string{active}
	}
	if u := p.unitFile(svc.units); u != "" {
		return []string{u}
	}
	return svc.units
}

// plan chooses the sources of a detected service and drops what other
// acquisition files already read: the agent would read it twice.
func (r *setupResult) plan(p *setupProbe, others []acquisition.Config) {
	svc := r.svc
	srcs := svc.logs(p)
	if srcs == nil && svc.journal && p.journald() {
		var filters []string
		for _, u := range p.journalUnit(svc, r.unit) {
			filters = append(filters, "_SYSTEMD_UNIT="+u)
		}
		srcs = []setupSource{{comment: svc.name + " logs to the journal only (no syslog file found)", kind: "journalctl", filters: filters}}
	}
	if srcs == nil {
		r.Status = setupNoLogs
		if svc.journal {
			r.Notes = append(r.Notes, "no log file and no journal found")
		}
		return
	}
	if by := journalReader(others, svc); by != "" {
		r.sources = srcs
		r.Status = setupCovered
		r.Notes = append(r.Notes, "its journal is read by "+by)
		return
	}
	var kept []setupSource
	var by []string
	for _, s := range srcs {
		if s.kind == "file" {
			var names []string
			for _, f := range s.filenames {
				if c := fileReader(others, p, f); c != "" {
					by = appendNew(by, c)
					continue
				}
				names = append(names, f)
			}
			s.filenames = names
			if names == nil {
				continue
			}
		}
		kept = append(kept, s)
	}
	r.sources = kept
	switch {
	case kept == nil:
		r.sources = srcs
		r.Status = setupCovered
		r.Notes = append(r.Notes, "its logs are read by "+strings.Join(by, ", "))
	case by != nil:
		r.Notes = append(r.Notes, "some of its logs are read by "+strings.Join(by, ", ")+": left to it")
	}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// otherAcquisition loads the acquisition files setup did not write.
func otherAcquisition(dir string) ([]acquisition.Config, error) {
	all, err := acquisition.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []acquisition.Config
	for _, c := range all {
		if !strings.HasPrefix(filepath.Base(c.File), "setup.") {
			out = append(out, c)
		}
	}
	return out, nil
}

// fileReader names the acquisition file already reading the log pattern
// (a path or glob of the probed system): the same pattern, or patterns
// matching every file it matches now.
func fileReader(others []acquisition.Config, p *setupProbe, pattern string) string {
	var files []string
	if strings.ContainsAny(pattern, "*?[") {
		dir := filepath.Dir(pattern)
		entries, _ := os.ReadDir(p.path(dir))
		for _, e := range entries {
			if ok, _ := filepath.Match(filepath.Base(pattern), e.Name()); ok {
				files = append(files, filepath.Join(dir, e.Name()))
			}
		}
	} else {
		files = []string{pattern}
	}
	readBy := func(f string) string {
		for _, c := range others {
			if c.Source != "file" {
				continue
			}
			for _, g := range append([]string{c.Filename}, c.Filenames...) {
				if g == "" {
					continue
				}
				if ok, _ := filepath.Match(filepath.Clean(g), f); ok {
					return filepath.Base(c.File)
				}
			}
		}
		return ""
	}
	if by := readBy(pattern); by != "" {
		return by
	}
	if files == nil {
		return ""
	}
	by := ""
	for _, f := range files {
		if by = readBy(f); by == "" {
			return ""
		}
	}
	return by
}

// journalReader names the acquisition file already reading the journal
// of svc (by unit or syslog identifier), whatever setup would choose:
// with a syslog daemon the same lines are in the journal and in files.
func journalReader(others []acquisition.Config, svc setupService) string {
	bare := func(s string) string { return strings.TrimSuffix(s, ".service") }
	matches := func(f, next string) bool {
		for _, u := range svc.units {
			switch f {
			case "_SYSTEMD_UNIT=" + u, "--unit=" + u, "--unit=" + bare(u):
				return true
			case "-u", "--unit":
				if next == u || next == bare(u) {
					return true
				}
			}
		}
		for _, c := range svc.procs {
			switch f {
			case "SYSLOG_IDENTIFIER=" + c, "--identifier=" + c, "_COMM=" + c:
				return true
			case "-t", "--identifier":
				if next == c {
					return true
				}
			}
		}
		return false
	}
	for _, c := range others {
		if c.Source != "journalctl" {
			continue
		}
		for i, f := range c.JournalctlFilter {
			next := ""
			if i+1 < len(c.JournalctlFilter) {
				next = c.JournalctlFilter[i+1]
			}
			if matches(f, next) {
				return filepath.Base(c.File)
			}
		}
	}
	return ""
}

// renderSetupBody is the part of the file the digest covers.
func renderSetupBody(svc setupService, srcs []setupSource) string {
	var b strings.Builder
	for _, s := range srcs {
		b.WriteString("\n[[source]]\n")
		if s.comment != "" {
			b.WriteString("# " + s.comment + "\n")
		}
		b.WriteString("source = " + tomlString(s.kind) + "\n")
		if s.kind == "journalctl" {
			b.WriteString("journalctl_filter = " + tomlArray(s.filters) + "\n")
		} else {
			b.WriteString("filenames = " + tomlArray(s.filenames) + "\n")
		}
		b.WriteString("labels = { type = " + tomlString(svc.label) + " }\n")
	}
	return b.String()
}

func renderSetupFile(svc setupService, how, body string, now time.Time) string {
	sum := sha256.Sum256([]byte(body))
	var b strings.Builder
	b.WriteString("# written by cscli setup on " + now.UTC().Format("2006-01-02") +
		"; edit freely: cscli setup does not overwrite edited files without --force\n")
	b.WriteString("# (it compares what follows the digest line with the digest).\n")
	b.WriteString("# To stop reading these logs, remove the [[source]] tables but keep the\n")
	b.WriteString("# file: setup writes a deleted file again.\n")
	b.WriteString("# " + svc.name + ": " + how + "\n")
	if svc.collections == nil {
		b.WriteString("# No Rampart rules read " + svc.label + " logs yet: this is for hub collections.\n")
	}
	b.WriteString(setupDigestPrefix + hex.EncodeToString(sum[:]) + "\n")
	b.WriteString(body)
	return b.String()
}

// readSetupFile reports what a previous run left at path: nothing, or
// its body and whether that body was edited since (a file without a
// digest line was not written by setup: edited, as far as setup knows).
func readSetupFile(path string) (exists bool, body string, edited bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", false, nil
	}
	if err != nil {
		return false, "", false, err
	}
	s := string(data)
	i := strings.Index(s, "\n"+setupDigestPrefix)
	if i < 0 {
		return true, "", true, nil
	}
	rest := s[i+1+len(setupDigestPrefix):]
	digest, body, ok := strings.Cut(rest, "\n")
	if !ok {
		return true, "", true, nil
	}
	sum := sha256.Sum256([]byte(body))
	return true, body, strings.TrimSpace(digest) != hex.EncodeToString(sum[:]), nil
}

// write writes the service's acquisition file unless it is up to date,
// edited (without --force) or this is a dry run.
func (r *setupResult) write(o setupOptions) error {
	body := renderSetupBody(r.svc, r.sources)
	exists, old, edited, err := readSetupFile(r.File)
	if err != nil {
		return err
	}
	switch {
	case !exists:
		r.Status = pick(o.dryRun, setupWouldWrite, setupWritten)
	case edited && !o.force:
		r.Status = setupKeptEdited
		return nil
	case edited:
		r.Status = pick(o.dryRun, setupWouldForce, setupOverwritten)
	case old == body:
		r.Status = setupUnchanged
		return nil
	default:
		r.Status = pick(o.dryRun, setupWouldUpdate, setupUpdated)
	}
	if o.dryRun {
		return nil
	}
	return writeFileAtomic(r.File, []byte(renderSetupFile(r.svc, r.How, body, time.Now())))
}

func pick(dry bool, ifDry, ifNot string) string {
	if dry {
		return ifDry
	}
	return ifNot
}

// writeFileAtomic replaces path whole, so that an agent starting
// meanwhile never reads half a file. The temporary name does not end in
// .toml: the agent would load it.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, data, 0o644)
}

// setupCollections makes sure the collections reading each written
// service are loaded: listed in crowdsec_service.collections, or
// installed into config_dir/collections from the hub folder.
func (cli *CLI) setupCollections(cfg *csconfig.Config, inRoot func(string) string, results []*setupResult, dryRun bool) error {
	var in *hub.Installer
	status := map[string]string{}
	var errs []error
	for _, r := range results {
		if !r.Detected || r.svc.collections == nil {
			if r.Detected {
				r.Notes = append(r.Notes, "no Rampart rules for "+r.Service+" yet: the acquisition is for hub collections")
			}
			continue
		}
		r.Collections = map[string]string{}
		for _, name := range r.svc.collections {
			if s, ok := status[name]; ok {
				r.Collections[name] = s
				continue
			}
			s, err := func() (string, error) {
				if slices.Contains(cfg.Crowdsec.Collections, name) {
					return "enabled in config", nil
				}
				if in == nil {
					h, err := hub.OpenHub(inRoot(cfg.ConfigPaths.HubDir))
					if err != nil {
						return "", err
					}
					in = &hub.Installer{Hub: h, ConfigDir: inRoot(cfg.ConfigPaths.ConfigDir), Collections: cfg.Crowdsec.Collections}
				}
				if ok, _ := in.Installed("collections", name); ok {
					return "installed", nil
				}
				if dryRun {
					return "would install", nil
				}
				done, err := in.Install("collections", name)
				if err != nil {
					return "", err
				}
				for _, d := range done {
					if n, ok := strings.CutPrefix(d, "collections/"); ok {
						status[n] = "installed now" // a dependency, such as rampart/base-http
					}
				}
				return "installed now", nil
			}()
			if err != nil {
				s = "error"
				errs = append(errs, fmt.Errorf("collection %s: %w", name, err))
			}
			status[name] = s
			r.Collections[name] = s
		}
	}
	return errors.Join(errs...)
}

func (cli *CLI) printSetup(results []*setupResult, dryRun bool) error {
	var found []*setupResult
	var missing []string
	for _, r := range results {
		if r.Detected {
			found = append(found, r)
		} else {
			missing = append(missing, r.Service)
		}
	}
	collCell := func(r *setupResult) string {
		var parts []string
		for _, n := range r.svc.collections {
			s := r.Collections[n]
			if s == "enabled in config" || s == "installed" {
				parts = append(parts, n)
			} else {
				parts = append(parts, n+" ("+s+")")
			}
		}
		if parts == nil {
			return "none"
		}
		return strings.Join(parts, ", ")
	}
	var rows [][]string
	for _, r := range found {
		logs := strings.Join(r.Logs, "; ")
		if logs == "" {
			logs = "-"
		}
		file := r.Status
		if r.File != "" {
			file = r.File + ": " + r.Status
		}
		rows = append(rows, []string{r.Service, r.How, logs, file, collCell(r)})
	}
	switch cli.OutputFormat() {
	case "json":
		out := make([]*setupResult, 0, len(found))
		out = append(out, found...)
		return cli.printJSON(map[string]any{"services": out, "not_detected": missing, "dry_run": dryRun})
	case "raw":
		return writeCSV(cli.Out, []string{"service", "detected", "logs", "acquisition", "collections"}, rows)
	}
	if found == nil {
		fmt.Fprintf(cli.Out, "No supported service detected (looked for %s): nothing written.\n", strings.Join(missing, ", "))
		return nil
	}
	renderTable(cli.Out, []string{"Service", "Detected", "Logs", "Acquisition", "Collections"}, rows)
	for _, r := range found {
		for _, n := range r.Notes {
			fmt.Fprintf(cli.Out, "%s: %s\n", r.Service, n)
		}
	}
	if missing != nil {
		fmt.Fprintf(cli.Out, "Not detected: %s.\n", strings.Join(missing, ", "))
	}
	changed := false
	for _, r := range found {
		switch r.Status {
		case setupWritten, setupUpdated, setupOverwritten:
			changed = true
		}
		for _, s := range r.Collections {
			changed = changed || s == "installed now"
		}
	}
	switch {
	case dryRun:
		fmt.Fprintln(cli.Out, "Dry run: nothing was written.")
	case changed:
		fmt.Fprintln(cli.Out, "Reload crowdsec (sudo systemctl reload crowdsec) for the agent to read them.")
	}
	return nil
}

// tomlString quotes s as a TOML basic string, which has no \x escape.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case unicode.IsControl(c):
			b.WriteString(`\u` + fmt.Sprintf("%04X", c))
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func tomlArray(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = tomlString(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
