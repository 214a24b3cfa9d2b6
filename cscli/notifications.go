package cscli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-ips/rampart/lapi/notify"
	"github.com/rampart-ips/rampart/lapi/profiles"
	"github.com/rampart-ips/rampart/models"
)

// notifTimeout bounds a test or a reinjection: the notification's own
// retries (max_retry) with their backoff, and the alert's fetch.
const notifTimeout = 10 * time.Minute

func newNotificationsCmd(cli *CLI) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "notifications [action]",
		Short:   "Helper for notification plugin configuration",
		Long:    "To list/inspect/test notification template",
		Aliases: []string{"notification", "notif"},
		Args:    cobra.MinimumNArgs(1),
	}
	cmd.AddCommand(newNotificationsListCmd(cli), newNotificationsInspectCmd(cli), newNotificationsTestCmd(cli),
		newNotificationsReinjectCmd(cli))
	return cmd
}

// notifState is the configured notifications with the profiles naming
// them: what every subcommand starts from.
type notifState struct {
	configs  []*notify.Config
	refs     map[string][]string // notification -> enabled profiles
	profiles *profiles.Set
	dir      string // the notification folder
}

// loadNotifications reads the profiles and the notification folder, and
// fails, as the LAPI's start does, when a profile names an unknown one.
func (cli *CLI) loadNotifications() (*notifState, error) {
	cfg, err := cli.Config()
	if err != nil {
		return nil, err
	}
	prof, err := profiles.Load(cfg.API.Server.ProfilesPath)
	if err != nil {
		return nil, fmt.Errorf("loading profiles: %w", err)
	}
	dir := cfg.ConfigPaths.NotificationDir
	configs, err := notify.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if err := notify.CheckReferences(prof.Notifications(), configs, dir); err != nil {
		return nil, err
	}
	return &notifState{configs: configs, refs: prof.EnabledNotifications(), profiles: prof, dir: dir}, nil
}

func (s *notifState) find(name string) (*notify.Config, error) {
	for _, c := range s.configs {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("notification %q not found (no file of the notification folder defines it)", name)
}

func newNotificationsListCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "list notifications plugins",
		Long:    "list notifications plugins and their status (active or not)",
		Example: "cscli notifications list",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.listNotifications(cmd.Context())
		},
	}
}

// notifJSON is one notification in -o json, upstream's shape, with the
// LAPI's deliveries (Rampart's; absent when the LAPI could not say).
type notifJSON struct {
	Config     *notify.Config             `json:"plugin_config"`
	Profiles   []string                   `json:"associated_profiles"`
	Deliveries *models.NotificationStatus `json:"deliveries,omitempty"`
}

// notificationStatuses asks the LAPI for its notifications' deliveries
// (what the dashboard shows); nil, after a warning, when it cannot say.
func (cli *CLI) notificationStatuses(ctx context.Context) map[string]*models.NotificationStatus {
	client, _, err := cli.Client()
	if err != nil {
		fmt.Fprintf(cli.Err, "warning: cannot reach the local API for the deliveries: %v\n", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	sts, err := client.Notifications(ctx)
	if err != nil {
		fmt.Fprintf(cli.Err, "warning: cannot read the deliveries from the local API: %v\n", err)
		return nil
	}
	out := make(map[string]*models.NotificationStatus, len(sts))
	for i := range sts {
		out[sts[i].Name] = &sts[i]
	}
	return out
}

// deliveryCells are the delivery columns of a notification's row; dashes
// when the LAPI did not report it (not loaded there, or unreachable).
func deliveryCells(d *models.NotificationStatus) []string {
	if d == nil {
		return []string{"-", "-", "-", "-", ""}
	}
	last := "never"
	if d.LastSent != nil {
		last = d.LastSent.UTC().Format(time.RFC3339)
	}
	errText := d.LastError
	if d.LastErrorAt != nil {
		errText = d.LastErrorAt.UTC().Format(time.RFC3339) + ": " + errText
	}
	waiting := strconv.Itoa(d.Queued)
	if d.Retrying > 0 {
		waiting += fmt.Sprintf(" (%d retrying)", d.Retrying)
	}
	return []string{strconv.FormatUint(d.Sent, 10), strconv.FormatUint(d.Failed, 10), waiting, last, errText}
}

func (cli *CLI) listNotifications(ctx context.Context) error {
	st, err := cli.loadNotifications()
	if err != nil {
		return err
	}
	var deliveries map[string]*models.NotificationStatus
	if len(st.configs) > 0 {
		deliveries = cli.notificationStatuses(ctx)
	}
	cs := slices.Clone(st.configs)
	// Upstream's order: the most used first.
	slices.SortStableFunc(cs, func(a, b *notify.Config) int {
		if d := len(st.refs[b.Name]) - len(st.refs[a.Name]); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	switch cli.OutputFormat() {
	case "json":
		out := map[string]notifJSON{}
		for _, c := range cs {
			out[c.Name] = notifJSON{Config: redactNotification(c), Profiles: nonNil(st.refs[c.Name]), Deliveries: deliveries[c.Name]}
		}
		return cli.printJSON(out)
	case "raw":
		rows := make([][]string, 0, len(cs))
		for _, c := range cs {
			rows = append(rows, append([]string{c.Name, c.Type, strings.Join(st.refs[c.Name], ",")}, deliveryCells(deliveries[c.Name])...))
		}
		return writeCSV(cli.Out, append([]string{"Name", "Type", "Profile name"}, deliveryHeader()...), rows)
	}
	rows := make([][]string, 0, len(cs))
	for _, c := range cs {
		active := markProhibited
		if len(st.refs[c.Name]) > 0 {
			active = markCheck
		}
		rows = append(rows, append([]string{active, c.Name, c.Type, strings.Join(st.refs[c.Name], ", ")}, deliveryCells(deliveries[c.Name])...))
	}
	if len(rows) == 0 {
		// The shipped examples are commented out: say so, a fresh install
		// looks like this.
		fmt.Fprintf(cli.Out, "No notification configured in %s (config_paths.notification_dir): its *.toml examples are commented out; "+
			"uncomment one, fill it in and name it in a profile (notifications = [\"http_default\"])\n", st.dir)
		return nil
	}
	renderTable(cli.Out, append([]string{"Active", "Name", "Type", "Profile name"}, deliveryHeader()...), rows)
	for _, c := range cs {
		if c.Problem != nil {
			fmt.Fprintf(cli.Out, "%s cannot send: %v\n", c.Name, c.Problem)
		}
	}
	return nil
}

// deliveryHeader names deliveryCells' columns: the LAPI's figures since it
// started, as the dashboard shows them.
func deliveryHeader() []string {
	return []string{"Sent", "Failed", "Waiting", "Last sent", "Last error"}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// redactNotification is a copy of c with its secrets hidden, as cscli
// config show and support dump hide them: the SMTP password, a Slack
// webhook (its URL is its credential), a Splunk token, a Sentinel key and
// the values of secret-looking headers (Authorization...).
func redactNotification(c *notify.Config) *notify.Config {
	r := *c
	for _, p := range []*string{&r.SMTPPassword, &r.Webhook, &r.Token, &r.SharedKey} {
		if *p != "" {
			*p = redacted
		}
	}
	if len(c.Headers) > 0 {
		r.Headers = map[string]string{}
		for k, v := range c.Headers {
			if isSecretKey(k) || strings.EqualFold(k, "x-api-key") {
				v = redacted
			}
			r.Headers[k] = v
		}
	}
	return &r
}

func newNotificationsInspectCmd(cli *CLI) *cobra.Command {
	return &cobra.Command{
		Use:               "inspect <name>",
		Short:             "Inspect notifications plugin",
		Long:              "Inspect notifications plugin and show configuration",
		Example:           "cscli notifications inspect <plugin_name>",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.inspectNotification(args[0])
		},
	}
}

func (cli *CLI) inspectNotification(name string) error {
	st, err := cli.loadNotifications()
	if err != nil {
		return err
	}
	c, err := st.find(name)
	if err != nil {
		return err
	}
	r := redactNotification(c)
	if cli.OutputFormat() == "json" {
		// The notification (upstream prints its whole cscli config here).
		return cli.printJSON(notifJSON{Config: r, Profiles: nonNil(st.refs[c.Name])})
	}
	fmt.Fprintf(cli.Out, " - %15s: %15s\n", "Type", r.Type)
	fmt.Fprintf(cli.Out, " - %15s: %15s\n", "Name", r.Name)
	fmt.Fprintf(cli.Out, " - %15s: %15s\n", "Timeout", r.Timeout.Duration)
	fmt.Fprintf(cli.Out, " - %15s: %15s\n", "Format", r.Format)
	for _, kv := range typeKeyValues(r) {
		fmt.Fprintf(cli.Out, " - %15s: %15s\n", kv[0], kv[1])
	}
	if c.Problem != nil {
		fmt.Fprintf(cli.Out, " - %15s: %15s\n", "Cannot send", c.Problem)
	}
	return nil
}

// typeKeyValues lists the grouping keys and the type's keys that are set,
// in the order of the configuration's documentation.
func typeKeyValues(c *notify.Config) [][2]string {
	var out [][2]string
	add := func(k string, v any) {
		s := fmt.Sprint(v)
		switch v := v.(type) {
		case string:
			if v == "" {
				return
			}
		case int:
			if v == 0 {
				return
			}
		case bool:
			if !v {
				return
			}
		case []string:
			if len(v) == 0 {
				return
			}
			s = strings.Join(v, ", ")
		case map[string]string:
			if len(v) == 0 {
				return
			}
			keys := slices.Sorted(maps.Keys(v))
			parts := make([]string, 0, len(keys))
			for _, k := range keys {
				parts = append(parts, k+": "+v[k])
			}
			s = strings.Join(parts, ", ")
		case time.Duration:
			if v == 0 {
				return
			}
		}
		out = append(out, [2]string{k, s})
	}
	add("group_wait", c.GroupWait.Duration)
	add("group_threshold", c.GroupThreshold)
	add("max_retry", c.MaxRetry)
	switch c.Type {
	case notify.TypeHTTP:
		add("url", c.URL)
		add("method", c.Method)
		add("headers", c.Headers)
		add("skip_tls_verification", c.SkipTLSVerification)
		add("ca_cert_path", c.CACertPath)
		add("cert_path", c.CertPath)
		add("key_path", c.KeyPath)
		add("unix_socket", c.UnixSocket)
	case notify.TypeSlack:
		add("webhook", c.Webhook)
		add("channel", c.Channel)
		add("username", c.Username)
		add("icon_emoji", c.IconEmoji)
		add("icon_url", c.IconURL)
	case notify.TypeEmail:
		add("smtp_host", c.SMTPHost)
		add("smtp_port", c.SMTPPort)
		add("smtp_username", c.SMTPUsername)
		add("smtp_password", c.SMTPPassword)
		add("sender_email", c.SenderEmail)
		add("sender_name", c.SenderName)
		add("receiver_emails", c.ReceiverEmails)
		add("email_subject", c.EmailSubject)
		add("encryption_type", c.EncryptionType)
		add("auth_type", c.AuthType)
		add("helo_host", c.HeloHost)
		add("connect_timeout", c.ConnectTimeout.Duration)
		add("send_timeout", c.SendTimeout.Duration)
		add("ca_cert_path", c.CACertPath)
		add("skip_tls_verification", c.SkipTLSVerification)
	case notify.TypeSplunk:
		add("url", c.URL)
		add("token", c.Token)
		add("ca_cert_path", c.CACertPath)
		add("skip_tls_verification", c.SkipTLSVerification)
	case notify.TypeSentinel:
		add("customer_id", c.CustomerID)
		add("shared_key", c.SharedKey)
		add("log_type", c.LogType)
		add("time_generated_field", c.TimeGeneratedField)
		add("url", c.URL)
	case notify.TypeFile:
		add("log_path", c.LogPath)
		add("file_format", c.FileFormat)
		if c.Rotate.Enabled {
			add("rotate", fmt.Sprintf("max_size=%dMB max_files=%d max_age=%dd compress=%v",
				c.Rotate.MaxSize, c.Rotate.MaxFiles, c.Rotate.MaxAge, c.Rotate.Compress))
		}
	}
	return out
}

func newNotificationsTestCmd(cli *CLI) *cobra.Command {
	var override string
	cmd := &cobra.Command{
		Use:   "test <name>",
		Short: "send a generic test alert to notification plugin",
		Long: "send a generic test alert to a notification plugin even if it is not active in profiles, " +
			"and say whether it was delivered",
		Example: `cscli notifications test [plugin_name]
cscli notifications test [plugin_name] --alert '{"source": {"ip": "192.0.2.1", "value": "192.0.2.1"}}'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.testNotification(cmdContext(cmd), args[0], override)
		},
	}
	cmd.Flags().StringVarP(&override, "alert", "a", "", "JSON string used to override alert fields in the generic alert (see crowdsec/pkg/models/alert.go in the source tree for the full definition of the object)")
	return cmd
}

// applyOverride decodes the JSON object override onto a (unknown keys
// are errors: a misspelt field would silently change nothing).
func applyOverride(a *models.Alert, override string) error {
	if override == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(override))
	dec.DisallowUnknownFields()
	if err := dec.Decode(a); err != nil {
		return fmt.Errorf("--alert: %w", err)
	}
	return nil
}

func (cli *CLI) testNotification(ctx context.Context, name, override string) error {
	st, err := cli.loadNotifications()
	if err != nil {
		return err
	}
	c, err := st.find(name)
	if err != nil {
		return err
	}
	if c.Problem != nil {
		return fmt.Errorf("notification %q cannot send: %w", name, c.Problem)
	}
	a := notify.TestAlert(time.Now())
	if err := applyOverride(a, override); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, notifTimeout)
	defer cancel()
	if err := notify.Send(ctx, c, []*models.Alert{a}, c.MaxRetry+1); err != nil {
		return fmt.Errorf("notification %q not delivered: %w", name, err)
	}
	fmt.Fprintf(cli.Out, "notification %q delivered\n", name)
	return nil
}

func newNotificationsReinjectCmd(cli *CLI) *cobra.Command {
	var override string
	cmd := &cobra.Command{
		Use:   "reinject <alert_id>",
		Short: "reinject an alert into profiles to trigger notifications",
		Long:  "Reinject an alert into the profiles to send it to the notifications of the profiles it matches, and say which got it",
		Example: `cscli notifications reinject <alert_id>
cscli notifications reinject <alert_id> -a '{"remediation": false,"scenario":"notification/test"}'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.prepare(cmd); err != nil {
				return err
			}
			return cli.reinjectNotification(cmdContext(cmd), args[0], override)
		},
	}
	cmd.Flags().StringVarP(&override, "alert", "a", "", "JSON string used to override alert fields in the reinjected alert (see crowdsec/pkg/models/alert.go in the source tree for the full definition of the object)")
	return cmd
}

func (cli *CLI) reinjectNotification(ctx context.Context, arg, override string) error {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil {
		return fmt.Errorf("bad alert id %s", arg)
	}
	st, err := cli.loadNotifications()
	if err != nil {
		return err
	}
	// As `cscli alerts inspect`: through the LAPI, as the machine.
	client, _, err := cli.Client()
	if err != nil {
		return err
	}
	fctx, cancel := context.WithTimeout(ctx, apiTimeout)
	a, err := client.GetAlert(fctx, id)
	cancel()
	if err != nil {
		return fmt.Errorf("can't find alert with id %d: %w", id, err)
	}
	if err := applyOverride(a, override); err != nil {
		return err
	}
	if a.Source == nil {
		return fmt.Errorf("alert %d has no source", id)
	}
	// The history helpers (GetDecisionsCount...) need the LAPI's
	// database: a profile using them fails here as its on_error says.
	names, err := st.profiles.Notify(ctx, a, nil)
	if err != nil {
		return fmt.Errorf("evaluating profiles: %w", err)
	}
	if len(names) == 0 {
		fmt.Fprintf(cli.Out, "alert %d matches no profile with notifications: nothing sent\n", id)
		return nil
	}
	ctx, cancel = context.WithTimeout(ctx, notifTimeout)
	defer cancel()
	var failed []string
	for _, n := range names {
		c, err := st.find(n)
		if err == nil {
			err = notify.Send(ctx, c, []*models.Alert{a}, c.MaxRetry+1)
		}
		if err != nil {
			fmt.Fprintf(cli.Err, "notification %q not delivered: %v\n", n, err)
			failed = append(failed, n)
			continue
		}
		fmt.Fprintf(cli.Out, "alert %d sent to notification %q\n", id, n)
	}
	if len(failed) > 0 {
		return errors.New("not delivered to " + strings.Join(failed, ", "))
	}
	return nil
}
