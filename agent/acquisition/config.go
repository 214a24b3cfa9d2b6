package acquisition

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/stricttoml"
)

// DefaultIdleWarning is how long a source may read nothing before it
// warns, when its idle_warning is not set.
const DefaultIdleWarning = 10 * time.Minute

// Config is one [[source]] table of an acquisition file. Key names follow
// upstream's acquis.yaml where upstream has them.
type Config struct {
	// Source is the kind: "file", "journalctl" or "syslog".
	Source string `toml:"source"`
	// Labels go on every line; labels.type selects the parsers.
	Labels map[string]string `toml:"labels"`
	// IdleWarning is how long the source may read nothing before it warns;
	// nil means DefaultIdleWarning and 0 disables the warning.
	IdleWarning *Duration `toml:"idle_warning"`

	// file
	Filename           string   `toml:"filename"` // upstream's single-file form, added to Filenames
	Filenames          []string `toml:"filenames"`
	PollWithoutInotify bool     `toml:"poll_without_inotify"`

	// journalctl
	JournalctlFilter []string `toml:"journalctl_filter"`

	// syslog
	ListenAddr string `toml:"listen_addr"`
	ListenPort int    `toml:"listen_port"`
	Protocol   string `toml:"protocol"` // "udp", "tcp" or "both"

	// File and Line say where the table was read, for error messages; both
	// are empty for sources built in code.
	File string `toml:"-"`
	Line int    `toml:"-"`
}

// IdlePeriod is the effective idle warning period (0: never warn).
func (c Config) IdlePeriod() time.Duration {
	if c.IdleWarning == nil {
		return DefaultIdleWarning
	}
	return time.Duration(*c.IdleWarning)
}

// Where names the table in error messages: "file:line", or the source
// kind for configurations built in code.
func (c Config) Where() string {
	if c.File == "" {
		return c.Source + " source"
	}
	return fmt.Sprintf("%s:%d", c.File, c.Line)
}

// Duration is a time.Duration written as a Go duration string ("10m",
// "30s", "0").
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"10m\", \"30s\" or \"0\")", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// Options are what every source shares, whatever its configuration.
type Options struct {
	// StateDir is where sources persist positions (journald cursors, file
	// offsets); "" keeps none.
	StateDir string
	// SaveInterval is how often positions are written (0: the default).
	SaveInterval time.Duration
	// MaxBacklogAge and MaxBacklogBytes bound what a file source reads at
	// start of what was written while it was stopped (0: the defaults;
	// a negative age: never resume, start at the end).
	MaxBacklogAge   time.Duration
	MaxBacklogBytes int64
	// WarmupWindow is how far back a file source reads again, at start,
	// lines it had processed before the stop, marked event.Line.Warmup,
	// so that the buckets are rebuilt (0: no warm-up). It is bounded by
	// MaxBacklogAge, and its bytes by MaxBacklogBytes.
	WarmupWindow time.Duration
	// Metrics receives line counts and idle states; nil disables metrics.
	Metrics *Metrics
	// Logger is the parent logger; nil means logrus' standard logger.
	Logger *log.Entry
}

func (o Options) saveInterval() time.Duration {
	if o.SaveInterval <= 0 {
		return DefaultStateSaveInterval
	}
	return o.SaveInterval
}

func (o Options) maxBacklogAge() time.Duration {
	if o.MaxBacklogAge == 0 {
		return DefaultMaxBacklogAge
	}
	return o.MaxBacklogAge
}

// warmupWindow is WarmupWindow within the backlog age (0: none).
func (o Options) warmupWindow() time.Duration {
	age := o.maxBacklogAge()
	if o.WarmupWindow <= 0 || age < 0 {
		return 0
	}
	return min(o.WarmupWindow, age)
}

func (o Options) maxBacklogBytes() int64 {
	if o.MaxBacklogBytes <= 0 {
		return DefaultMaxBacklogBytes
	}
	return o.MaxBacklogBytes
}

func (o Options) logger() *log.Entry {
	if o.Logger == nil {
		return log.NewEntry(log.StandardLogger())
	}
	return o.Logger
}

// constructor builds a source of one kind from its configuration.
type constructor func(Config, Options) (Source, error)

// constructors lists the source kinds, by the value of their "source" key.
func constructors() map[string]constructor {
	return map[string]constructor{
		"file":       newFileSource,
		"journalctl": newJournalSource,
		"syslog":     newSyslogSource,
	}
}

// replayer builds a one-shot source from a whole DSN of one scheme.
type replayer func(dsn string, labels map[string]string, opts Options) (Source, error)

// replayers lists the DSN schemes FromDSN knows.
func replayers() map[string]replayer {
	return map[string]replayer{
		"file":       fileReplayFromDSN,
		"journalctl": journalReplayFromDSN,
	}
}

// journalReplayFromDSN reads upstream's form,
// journalctl://filters=_SYSTEMD_UNIT=ssh.service&filters=..., which puts
// a query where a URL has its host.
func journalReplayFromDSN(dsn string, labels map[string]string, opts Options) (Source, error) {
	q, err := url.ParseQuery(strings.TrimPrefix(strings.TrimPrefix(dsn, "journalctl://"), "?"))
	if err != nil {
		return nil, fmt.Errorf("parsing journalctl DSN: %w", err)
	}
	for k := range q {
		if k != "filters" {
			return nil, fmt.Errorf("journalctl DSN: unknown parameter %q (only filters)", k)
		}
	}
	if len(q["filters"]) == 0 {
		return nil, errors.New("journalctl DSN: no filters, e.g. journalctl://filters=_SYSTEMD_UNIT=ssh.service")
	}
	return newJournalReplay(q["filters"], labels, opts)
}

// New builds the source a configuration describes.
func New(cfg Config, opts Options) (Source, error) {
	mk, ok := constructors()[cfg.Source]
	if !ok {
		return nil, fmt.Errorf("%s: source %q is not available (known: %s)", cfg.Where(), cfg.Source, knownKinds())
	}
	src, err := mk(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %s source: %w", cfg.Where(), cfg.Source, err)
	}
	return src, nil
}

func knownKinds() string {
	var kinds []string
	for k := range constructors() {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ", ")
}

// FromDSN builds a replay source: file:///var/log/auth.log (globs and
// .gz allowed) or journalctl://filters=_SYSTEMD_UNIT=ssh.service&filters=...
// labels must hold "type".
func FromDSN(dsn string, labels map[string]string, opts Options) (Source, error) {
	if labels["type"] == "" {
		return nil, fmt.Errorf("replay of %s: labels need a type (it selects the parsers)", dsn)
	}
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return nil, fmt.Errorf("DSN %q: want scheme://..., e.g. file:///var/log/auth.log", dsn)
	}
	mk, ok := replayers()[scheme]
	if !ok {
		return nil, fmt.Errorf("DSN %q: source %q is not available for replay", dsn, scheme)
	}
	src, err := mk(dsn, labels, opts)
	if err != nil {
		return nil, fmt.Errorf("DSN %q: %w", dsn, err)
	}
	return src, nil
}

// acquisFile is the layout of one file in the acquisition directory.
type acquisFile struct {
	Source []Config `toml:"source"`
}

// LoadDir reads every *.toml file of dir, in name order. Unknown keys, a
// missing labels.type, a bad duration, an unknown source kind or two
// syslog sources on the same port are errors naming the file and line. A
// missing dir holds no sources.
func LoadDir(dir string) ([]Config, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.toml"))
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	if len(paths) == 0 {
		if _, err := os.Stat(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading acquisition directory: %w", err)
		}
	}
	sort.Strings(paths)
	var all []Config
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading acquisition file: %w", err)
		}
		cfgs, err := parseFile(data, p)
		if err != nil {
			return nil, err
		}
		all = append(all, cfgs...)
	}
	if err := checkListeners(all); err != nil {
		return nil, err
	}
	return all, nil
}

// parseFile decodes and checks one acquisition file.
func parseFile(data []byte, name string) ([]Config, error) {
	var f acquisFile
	if _, err := stricttoml.Decode(data, name, &f); err != nil {
		return nil, err
	}
	lines := sourceLines(data)
	known := constructors()
	for i := range f.Source {
		c := &f.Source[i]
		c.File = name
		if i < len(lines) {
			c.Line = lines[i]
		}
		if c.Source == "" {
			return nil, fmt.Errorf("%s: missing source (one of %s)", c.Where(), knownKinds())
		}
		if _, ok := known[c.Source]; !ok {
			return nil, fmt.Errorf("%s: source %q is not available (known: %s)", c.Where(), c.Source, knownKinds())
		}
		if c.Labels["type"] == "" {
			return nil, fmt.Errorf("%s: missing labels.type (it selects the parsers), e.g. labels = { type = \"syslog\" }", c.Where())
		}
	}
	return f.Source, nil
}

var sourceHeader = regexp.MustCompile(`^\s*\[\[\s*source\s*\]\]`)

// sourceLines returns the line of each [[source]] header, in order: the
// i-th header opens the i-th table.
func sourceLines(data []byte) []int {
	var out []int
	for i, l := range strings.Split(string(data), "\n") {
		if sourceHeader.MatchString(l) {
			out = append(out, i+1)
		}
	}
	return out
}
