// Package notify sends notifications about alerts, as CrowdSec's
// notification plugins do, but built in: http (webhooks), slack, email
// (SMTP), file, splunk (HTTP Event Collector) and sentinel (Azure Log
// Analytics). A profile names the notifications its alerts go to
// (notifications = ["name"]); each notification is written with
// upstream's keys in a file of the notification folder, upstream's YAML
// or TOML, read by one loader into one Config.
//
// The Broker delivers them off the ban path: the LAPI hands it the id of
// an alert it has stored, a bounded queue per notification takes it or
// counts it as dropped, and a worker per notification groups the alerts
// (group_wait, group_threshold), renders the format template over them
// and sends, retrying with backoff on errors and on HTTP error statuses.
// Nothing here can block an alert's ingestion or a decision's delivery.
package notify

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/stricttoml"
)

// Types of notification.
const (
	TypeHTTP  = "http"
	TypeSlack = "slack"
	TypeEmail = "email"
	TypeFile  = "file"
	// TypeSplunk and TypeSentinel are upstream's notification-splunk
	// and notification-sentinel plugins, built in.
	TypeSplunk   = "splunk"
	TypeSentinel = "sentinel"
)

// builtinTypes lists the types, for messages.
const builtinTypes = "http, slack, email, file, splunk or sentinel"

// Defaults, upstream's where upstream has one.
const (
	DefaultTimeout = 5 * time.Second
	// retryFor is how long delivery is retried when max_retry is 0.
	retryFor = 5 * time.Minute
)

// Config is one notification as written in its TOML file: upstream's
// common keys, then the keys of each type. A key of another type than
// the notification's is an error (a typo or a copy-paste gone wrong).
type Config struct {
	Type   string `toml:"type" yaml:"type"`
	Name   string `toml:"name" yaml:"name"`
	Format string `toml:"format" yaml:"format"`
	// GroupWait holds alerts this long after the first one of a group,
	// then sends them together.
	GroupWait csconfig.Duration `toml:"group_wait" yaml:"group_wait"`
	// GroupThreshold sends as soon as this many alerts wait, and cuts
	// larger groups into messages of this many alerts.
	GroupThreshold int `toml:"group_threshold" yaml:"group_threshold"`
	// MaxRetry > 0: at most max_retry+1 attempts; 0: retry for 5 minutes.
	MaxRetry int `toml:"max_retry" yaml:"max_retry"`
	// Timeout bounds each attempt (default 5s).
	Timeout csconfig.Duration `toml:"timeout" yaml:"timeout"`
	// LogLevel is accepted for upstream's files; the LAPI's level applies.
	LogLevel string `toml:"log_level" yaml:"log_level"`

	// http
	URL                 string            `toml:"url" yaml:"url"`
	Method              string            `toml:"method" yaml:"method"`
	Headers             map[string]string `toml:"headers" yaml:"headers"`
	SkipTLSVerification bool              `toml:"skip_tls_verification" yaml:"skip_tls_verification"`
	CACertPath          string            `toml:"ca_cert_path" yaml:"ca_cert_path"`
	CertPath            string            `toml:"cert_path" yaml:"cert_path"`
	KeyPath             string            `toml:"key_path" yaml:"key_path"`
	UnixSocket          string            `toml:"unix_socket" yaml:"unix_socket"`

	// slack
	Webhook   string `toml:"webhook" yaml:"webhook"`
	Channel   string `toml:"channel" yaml:"channel"`
	Username  string `toml:"username" yaml:"username"`
	IconEmoji string `toml:"icon_emoji" yaml:"icon_emoji"`
	IconURL   string `toml:"icon_url" yaml:"icon_url"`

	// email
	SMTPHost       string            `toml:"smtp_host" yaml:"smtp_host"`
	SMTPPort       int               `toml:"smtp_port" yaml:"smtp_port"`
	SMTPUsername   string            `toml:"smtp_username" yaml:"smtp_username"`
	SMTPPassword   string            `toml:"smtp_password" yaml:"smtp_password"`
	SenderEmail    string            `toml:"sender_email" yaml:"sender_email"`
	SenderName     string            `toml:"sender_name" yaml:"sender_name"`
	ReceiverEmails []string          `toml:"receiver_emails" yaml:"receiver_emails"`
	EmailSubject   string            `toml:"email_subject" yaml:"email_subject"`
	EncryptionType string            `toml:"encryption_type" yaml:"encryption_type"`
	AuthType       string            `toml:"auth_type" yaml:"auth_type"`
	HeloHost       string            `toml:"helo_host" yaml:"helo_host"`
	ConnectTimeout csconfig.Duration `toml:"connect_timeout" yaml:"connect_timeout"`
	SendTimeout    csconfig.Duration `toml:"send_timeout" yaml:"send_timeout"`

	// file
	LogPath string `toml:"log_path" yaml:"log_path"`
	// FileFormat is "text" (the rendered text appended as it is, as
	// upstream) or "json" (the rendered text must be JSON values, each
	// appended compacted on a line of its own: JSON lines).
	FileFormat string `toml:"file_format" yaml:"file_format"`
	Rotate     Rotate `toml:"rotate" yaml:"rotate"`

	// splunk (HTTP Event Collector): url, token, and the TLS keys of http.
	Token string `toml:"token" yaml:"token"`

	// sentinel (Azure Log Analytics' HTTP Data Collector API): the
	// workspace id and its base64 key, the record type; url, when set,
	// replaces the public cloud's endpoint (a sovereign cloud's).
	CustomerID string `toml:"customer_id" yaml:"customer_id"`
	SharedKey  string `toml:"shared_key" yaml:"shared_key"`
	LogType    string `toml:"log_type" yaml:"log_type"`
	// TimeGeneratedField names the field of the records holding their
	// time (Azure's time-generated-field header); Azure's receipt time
	// when unset.
	TimeGeneratedField string `toml:"time_generated_field" yaml:"time_generated_field"`

	// Source is the file the notification was read from.
	Source string `toml:"-" yaml:"-"`
	// Problem says why the notification cannot send (a missing or wrong
	// type-specific value, such as the placeholders of upstream's shipped
	// files): harmless until a profile names it, which is then an error.
	Problem error `toml:"-" yaml:"-" json:"-"`

	tmpl *template.Template
}

// Rotate is the file type's rotation, upstream's keys.
type Rotate struct {
	Enabled bool `toml:"enabled" yaml:"enabled"`
	// MaxSize in megabytes: the file is rotated before it would grow past.
	MaxSize int `toml:"max_size" yaml:"max_size"`
	// MaxFiles rotated files are kept (0: all).
	MaxFiles int `toml:"max_files" yaml:"max_files"`
	// MaxAge in days: older rotated files are removed (0: kept).
	MaxAge   int  `toml:"max_age" yaml:"max_age"`
	Compress bool `toml:"compress" yaml:"compress"`
}

// typeKeys are the keys only some types accept (types joined by commas).
// skip_tls_verification and ca_cert_path also serve email, which upstream
// gives no way to trust a private CA.
var typeKeys = map[string]string{
	"url": TypeHTTP + "," + TypeSplunk + "," + TypeSentinel, "method": TypeHTTP, "headers": TypeHTTP,
	"skip_tls_verification": TypeHTTP + "," + TypeEmail + "," + TypeSplunk,
	"ca_cert_path":          TypeHTTP + "," + TypeEmail + "," + TypeSplunk, "cert_path": TypeHTTP, "key_path": TypeHTTP, "unix_socket": TypeHTTP,
	"webhook": TypeSlack, "channel": TypeSlack, "username": TypeSlack, "icon_emoji": TypeSlack, "icon_url": TypeSlack,
	"smtp_host": TypeEmail, "smtp_port": TypeEmail, "smtp_username": TypeEmail, "smtp_password": TypeEmail,
	"sender_email": TypeEmail, "sender_name": TypeEmail, "receiver_emails": TypeEmail, "email_subject": TypeEmail,
	"encryption_type": TypeEmail, "auth_type": TypeEmail, "helo_host": TypeEmail, "connect_timeout": TypeEmail,
	"send_timeout": TypeEmail,
	"log_path":     TypeFile, "file_format": TypeFile, "rotate": TypeFile,
	"token":       TypeSplunk,
	"customer_id": TypeSentinel, "shared_key": TypeSentinel, "log_type": TypeSentinel, "time_generated_field": TypeSentinel,
}

// fileLayout is a notification file: one notification written at the top
// level (upstream's single-document file), or several as
// [[notification]] tables (upstream's multi-document file), or both.
type fileLayout struct {
	Config
	Notification []*Config `toml:"notification"`
}

// Parse decodes the notifications of one TOML document; name is used in
// messages (usually the file path). Every notification is validated, its
// defaults applied and its format compiled.
func Parse(data []byte, name string) ([]*Config, error) {
	var f fileLayout
	md, err := stricttoml.Decode(data, name, &f)
	if err != nil {
		return nil, err
	}
	var out []*Config
	top := false
	for _, k := range md.Keys() {
		if len(k) >= 1 && k[0] != "notification" {
			top = true
		}
	}
	if top {
		c := f.Config
		if err := c.check(name, ""); err != nil {
			return nil, err
		}
		out = append(out, &c)
	}
	for i, c := range f.Notification {
		if c == nil {
			continue
		}
		if err := c.check(name, fmt.Sprintf("notification #%d", i+1)); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// check validates c, applies defaults and compiles the format. What
// makes the file wrong (a missing name or type, a type not built in, a
// key of another type, a format that does not compile) is an error; a
// type-specific value that is missing or wrong only makes c unusable
// (c.Problem), as upstream checks those only for the notifications a
// profile uses: its shipped files hold placeholders such as <HTTP_url>.
func (c *Config) check(file, where string) error {
	c.Source = file
	label := file + ": "
	if where != "" {
		label += where + ": "
	}
	if strings.TrimSpace(c.Name) == "" {
		return fmt.Errorf("%smissing name", label)
	}
	label = fmt.Sprintf("%snotification %q: ", label, c.Name)
	switch c.Type {
	case TypeHTTP, TypeSlack, TypeEmail, TypeFile, TypeSplunk, TypeSentinel:
	case "":
		return fmt.Errorf("%smissing type (%s)", label, builtinTypes)
	default:
		// Upstream runs notification-<type> from its plugin_dir.
		return fmt.Errorf("%stype %q is not built in (%s): Rampart runs no plugin binaries, so a notification-%s plugin cannot be used",
			label, c.Type, builtinTypes, c.Type)
	}
	for _, k := range slices.Sorted(maps.Keys(typeKeys)) {
		if t := typeKeys[k]; !slices.Contains(strings.Split(t, ","), c.Type) && c.wrote(k) {
			return fmt.Errorf("%skey %s belongs to type %s, not %s", label, k, strings.ReplaceAll(t, ",", ", "), c.Type)
		}
	}
	if c.GroupThreshold < 0 {
		return fmt.Errorf("%sgroup_threshold must not be negative", label)
	}
	if c.MaxRetry < 0 {
		return fmt.Errorf("%smax_retry must not be negative", label)
	}
	if c.GroupWait.Duration < 0 || c.Timeout.Duration < 0 {
		return fmt.Errorf("%sgroup_wait and timeout must not be negative", label)
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = DefaultTimeout
	}
	if strings.TrimSpace(c.Format) == "" {
		return fmt.Errorf("%smissing format (a Go template over the list of alerts)", label)
	}
	t, err := template.New(c.Name).Funcs(funcMap()).Parse(c.Format)
	if err != nil {
		return fmt.Errorf("%sformat: %w", label, err)
	}
	c.tmpl = t
	c.expandEnv()
	var terr error
	switch c.Type {
	case TypeHTTP:
		terr = c.checkHTTP()
	case TypeSlack:
		if c.Webhook == "" {
			terr = errors.New("missing webhook")
		}
	case TypeEmail:
		terr = c.checkEmail()
	case TypeFile:
		terr = c.checkFile()
	case TypeSplunk:
		terr = c.checkSplunk()
	case TypeSentinel:
		terr = c.checkSentinel()
	}
	if terr != nil {
		c.Problem = fmt.Errorf("%s%w", label, terr)
	}
	return nil
}

// wrote reports whether the type-specific key k holds a value in c (the
// decoder's metadata cannot say which [[notification]] table set a key).
func (c *Config) wrote(k string) bool {
	switch k {
	case "url":
		return c.URL != ""
	case "method":
		return c.Method != ""
	case "headers":
		return len(c.Headers) > 0
	case "skip_tls_verification":
		return c.SkipTLSVerification
	case "ca_cert_path":
		return c.CACertPath != ""
	case "cert_path":
		return c.CertPath != ""
	case "key_path":
		return c.KeyPath != ""
	case "unix_socket":
		return c.UnixSocket != ""
	case "webhook":
		return c.Webhook != ""
	case "channel":
		return c.Channel != ""
	case "username":
		return c.Username != ""
	case "icon_emoji":
		return c.IconEmoji != ""
	case "icon_url":
		return c.IconURL != ""
	case "smtp_host":
		return c.SMTPHost != ""
	case "smtp_port":
		return c.SMTPPort != 0
	case "smtp_username":
		return c.SMTPUsername != ""
	case "smtp_password":
		return c.SMTPPassword != ""
	case "sender_email":
		return c.SenderEmail != ""
	case "sender_name":
		return c.SenderName != ""
	case "receiver_emails":
		return len(c.ReceiverEmails) > 0
	case "email_subject":
		return c.EmailSubject != ""
	case "encryption_type":
		return c.EncryptionType != ""
	case "auth_type":
		return c.AuthType != ""
	case "helo_host":
		return c.HeloHost != ""
	case "connect_timeout":
		return c.ConnectTimeout.Duration != 0
	case "send_timeout":
		return c.SendTimeout.Duration != 0
	case "log_path":
		return c.LogPath != ""
	case "file_format":
		return c.FileFormat != ""
	case "rotate":
		return c.Rotate != Rotate{}
	case "token":
		return c.Token != ""
	case "customer_id":
		return c.CustomerID != ""
	case "shared_key":
		return c.SharedKey != ""
	case "log_type":
		return c.LogType != ""
	case "time_generated_field":
		return c.TimeGeneratedField != ""
	}
	return false
}

// expandEnv replaces $VAR and ${VAR} by the variable's value in every
// value but the format, as upstream does for a whole config, leaving an
// undefined variable exactly as written (a password may hold a dollar
// sign). Unlike upstream, the format is left alone: a template may well
// print a dollar sign. Name and type stay as written: profiles name them.
func (c *Config) expandEnv() {
	for _, p := range []*string{&c.URL, &c.Method, &c.UnixSocket, &c.CACertPath, &c.CertPath, &c.KeyPath,
		&c.Webhook, &c.Channel, &c.Username, &c.IconEmoji, &c.IconURL,
		&c.SMTPHost, &c.SMTPUsername, &c.SMTPPassword, &c.SenderEmail, &c.SenderName, &c.EmailSubject,
		&c.EncryptionType, &c.AuthType, &c.HeloHost, &c.LogPath, &c.FileFormat,
		&c.Token, &c.CustomerID, &c.SharedKey, &c.LogType, &c.TimeGeneratedField} {
		*p = expandDefined(*p)
	}
	for k, v := range c.Headers {
		c.Headers[k] = expandDefined(v)
	}
	for i, r := range c.ReceiverEmails {
		c.ReceiverEmails[i] = expandDefined(r)
	}
}

// expandDefined replaces $NAME and ${NAME} (NAME: letters, digits and
// underscores, not starting with a digit) by the environment's value
// when the variable is defined; anything else is kept as written.
func expandDefined(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	isName := func(b byte, first bool) bool {
		return b == '_' || (b|0x20 >= 'a' && b|0x20 <= 'z') || (!first && b >= '0' && b <= '9')
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			out.WriteByte(s[i])
			i++
			continue
		}
		name, end := "", i+1
		if s[i+1] == '{' {
			if j := strings.IndexByte(s[i+2:], '}'); j > 0 {
				name, end = s[i+2:i+2+j], i+3+j
				for k := 0; k < len(name); k++ {
					if !isName(name[k], k == 0) {
						name = ""
						break
					}
				}
			}
		} else {
			for end < len(s) && isName(s[end], end == i+1) {
				end++
			}
			name = s[i+1 : end]
		}
		if v, ok := os.LookupEnv(name); ok && name != "" {
			out.WriteString(v)
			i = end
			continue
		}
		out.WriteByte('$')
		i++
	}
	return out.String()
}

// LoadDir reads every *.toml, *.yaml and *.yml file directly in dir, in
// name order: Rampart's TOML and upstream's YAML, the same keys through
// the same checks. A missing folder holds no notification. Two
// notifications with one name are an error naming both files (upstream
// warns and keeps the last).
func LoadDir(dir string) ([]*Config, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading notification folder: %w", err)
	}
	var out []*Config
	seen := map[string]*Config{}
	for _, e := range entries {
		parse := Parse
		switch filepath.Ext(e.Name()) {
		case ".toml":
		case ".yaml", ".yml":
			parse = ParseYAML
		default:
			continue
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading notification: %w", err)
		}
		cs, err := parse(data, path)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if prev, ok := seen[c.Name]; ok {
				return nil, duplicateError(c.Name, prev.Source, c.Source)
			}
			seen[c.Name] = c
			out = append(out, c)
		}
	}
	return out, nil
}

// duplicateError says where a name is defined twice, and what to do: a
// CrowdSec user's kept YAML file and an uncommented TOML example may well
// both define http_default.
func duplicateError(name, first, second string) error {
	where := ": in " + first + " and in " + second
	if first == second {
		where = " in " + first
	}
	return fmt.Errorf("notification %q is defined twice%s; a name must be defined once across the notification folder: "+
		"rename one (and the profiles naming it) or comment it out", name, where)
}

// CheckReferences fails when a profile names a notification that is not
// configured, or one that cannot send (Config.Problem): refs maps each
// notification name to the profiles naming it.
func CheckReferences(refs map[string][]string, configs []*Config, dir string) error {
	known := map[string]*Config{}
	for _, c := range configs {
		known[c.Name] = c
	}
	var names []string
	for _, n := range slices.Sorted(maps.Keys(refs)) {
		if c := known[n]; c != nil && c.Problem != nil {
			return fmt.Errorf("profile %q names notification %q, which cannot send: %w", refs[n][0], n, c.Problem)
		}
		if known[n] == nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	n := names[0]
	return fmt.Errorf("profile %q names notification %q, which is not configured (no file in %s defines name = %q)",
		refs[n][0], n, dir, n)
}
