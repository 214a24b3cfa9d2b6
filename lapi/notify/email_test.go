package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ips/rampart/internal/testpki"
	"github.com/rampart-ips/rampart/models"
)

// exim is a real Exim (Debian's exim4-daemon-light) on two loopback
// ports with a configuration of the test's own: SMTP with STARTTLS and
// SMTPS (TLS from the first byte), PLAIN, LOGIN and CRAM-MD5 for user
// "rampart". It queues every mail it accepts and delivers none, so a
// test reads the mail from its spool.
type exim struct {
	plain, tls int    // ports
	spool      string // spool_directory
	caFile     string // the CA of its certificate
}

const (
	smtpUser = "rampart"
	smtpPass = "s3cret-pass"
)

// startExim starts the server, or skips when Exim is missing (or fails
// when RAMPART_REQUIRE_SMTP=1, as in CI).
func startExim(t *testing.T) *exim {
	t.Helper()
	bin := ""
	for _, p := range []string{"exim4", "exim", "/usr/sbin/exim4", "/usr/sbin/exim"} {
		if b, err := exec.LookPath(p); err == nil {
			bin = b
			break
		}
	}
	missing := func(why string) {
		t.Helper()
		if os.Getenv("RAMPART_REQUIRE_SMTP") == "1" {
			t.Fatalf("%s, and RAMPART_REQUIRE_SMTP=1", why)
		}
		t.Skipf("%s: the email notification is tested against a real SMTP server (apt-get install exim4-daemon-light)", why)
	}
	if bin == "" {
		missing("no exim4 binary")
	}
	if os.Geteuid() != 0 {
		missing("not root (Exim keeps its privileges with a test configuration only for root)")
	}
	pki := testpki.New(t)
	leaf := pki.IssueServerFor("smtp", time.Now().Add(time.Hour), "127.0.0.1", "localhost")
	// The free ports are picked before Exim binds them: another process
	// may take one in between, so a failed start is tried again.
	var errs []string
	for range 3 {
		e, err := runExim(t, bin, pki.File, leaf)
		if err == nil {
			return e
		}
		errs = append(errs, err.Error())
	}
	t.Fatalf("starting exim: %s", strings.Join(errs, "\n"))
	return nil
}

// runExim starts Exim once on two free ports.
func runExim(t *testing.T, bin, caFile string, leaf testpki.Leaf) (*exim, error) {
	t.Helper()
	dir := t.TempDir()
	e := &exim{plain: freePort(t), tls: freePort(t), spool: filepath.Join(dir, "spool"), caFile: caFile}
	conf := fmt.Sprintf(`primary_hostname = rampart.test
spool_directory = %[1]s/spool
log_file_path = %[1]s/%%slog
pid_file_path = %[1]s/exim.pid
keep_environment =
exim_user = root
exim_group = root
daemon_smtp_ports = %[2]d : %[3]d
tls_on_connect_ports = %[3]d
local_interfaces = 127.0.0.1
queue_only = true
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = *
tls_certificate = %[4]s
tls_privatekey = %[5]s
acl_smtp_rcpt = acl_rcpt

begin acl
acl_rcpt:
  accept

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_condition = ${if and {{eq{$auth2}{%[6]s}}{eq{$auth3}{%[7]s}}}}
  server_set_id = $auth2
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = ${if and {{eq{$auth1}{%[6]s}}{eq{$auth2}{%[7]s}}}}
  server_set_id = $auth1
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = ${if eq{$auth1}{%[6]s}{%[7]s}fail}
  server_set_id = $auth1
`, dir, e.plain, e.tls, leaf.CertFile, leaf.KeyFile, smtpUser, smtpPass)
	confPath := filepath.Join(dir, "exim.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "-C", confPath, "-bdf")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{e.plain, e.tls} {
		for {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				logs, _ := os.ReadFile(filepath.Join(dir, "mainlog"))
				panics, _ := os.ReadFile(filepath.Join(dir, "paniclog"))
				stop()
				return nil, fmt.Errorf("exim exited: %s\n%s\n%s", out.String(), logs, panics)
			default:
			}
			if time.Now().After(deadline) {
				stop()
				return nil, fmt.Errorf("exim does not listen on %d: %s", port, out.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	t.Cleanup(stop)
	return e, nil
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// queuedMail is a message in the spool.
type queuedMail struct{ header, body string }

// queued returns the mails Exim accepted: its -H file (envelope and
// headers) and its -D file (the body, decoded from quoted-printable).
func (e *exim) queued(t *testing.T) []queuedMail {
	t.Helper()
	hs, _ := filepath.Glob(filepath.Join(e.spool, "input", "*-H"))
	var out []queuedMail
	for _, h := range hs {
		hdr, err1 := os.ReadFile(h)
		data, err2 := os.ReadFile(strings.TrimSuffix(h, "-H") + "-D")
		if err1 != nil || err2 != nil {
			continue // being written
		}
		// The -D file starts with a line naming itself.
		_, raw, _ := strings.Cut(string(data), "\n")
		body, err := io.ReadAll(quotedprintable.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("decoding %s: %v", h, err)
		}
		out = append(out, queuedMail{header: string(hdr), body: string(body)})
	}
	return out
}

// find waits for the mail whose Subject is subject.
func (e *exim) find(t *testing.T, subject string) queuedMail {
	t.Helper()
	var found *queuedMail
	waitFor(t, "the mail "+subject, func() bool {
		for _, m := range e.queued(t) {
			if strings.Contains(m.header, "Subject: "+subject+"\n") {
				found = &m
				return true
			}
		}
		return false
	})
	return *found
}

func emailConfig(t *testing.T, e *exim, subject string, port int, extra string) *Config {
	t.Helper()
	return mustParse(t, fmt.Sprintf(`type = "email"
name = "mail"
format = '''<p>{{range .}}{{.Scenario}} banned {{.Source.IP}} for {{(index .Decisions 0).Duration}}{{end}}</p>'''
smtp_host = "127.0.0.1"
smtp_port = %d
sender_email = "rampart@example.test"
sender_name = "Rampart IPS"
receiver_emails = ["ops@example.test", "sec@example.test"]
email_subject = %q
ca_cert_path = %q
%s`, port, subject, e.caFile, extra))
}

func TestEmailDeliveredToSMTPServer(t *testing.T) {
	e := startExim(t)
	alerts := []*models.Alert{TestAlert(time.Now())}
	for _, tc := range []struct {
		subject   string
		port      int
		extra     string
		tls, auth bool // what the spool must record
	}{
		{"starttls plain", e.plain, "encryption_type = \"starttls\"\nauth_type = \"plain\"\nsmtp_username = \"rampart\"\nsmtp_password = \"s3cret-pass\"", true, true},
		{"ssltls login", e.tls, "encryption_type = \"ssltls\"\nauth_type = \"login\"\nsmtp_username = \"rampart\"\nsmtp_password = \"s3cret-pass\"", true, true},
		{"clear crammd5", e.plain, "encryption_type = \"none\"\nauth_type = \"crammd5\"\nsmtp_username = \"rampart\"\nsmtp_password = \"s3cret-pass\"", false, true},
		{"clear anonymous", e.plain, "encryption_type = \"none\"", false, false},
	} {
		t.Run(tc.subject, func(t *testing.T) {
			c := emailConfig(t, e, tc.subject, tc.port, tc.extra)
			if err := Send(context.Background(), c, alerts, 1); err != nil {
				t.Fatalf("Send: %v", err)
			}
			m := e.find(t, tc.subject)
			for _, want := range []string{"From: \"Rampart IPS\" <rampart@example.test>", "To: ops@example.test, sec@example.test",
				"Content-Type: text/html", "ops@example.test\n", "sec@example.test\n"} {
				if !strings.Contains(m.header, want) {
					t.Errorf("header lacks %q:\n%s", want, m.header)
				}
			}
			// Exim records the authenticated user and the TLS cipher of
			// the session that brought the mail.
			if got := strings.Contains(m.header, "-auth_id rampart\n"); got != tc.auth {
				t.Errorf("authenticated %v, want %v:\n%s", got, tc.auth, m.header)
			}
			if got := strings.Contains(m.header, "-tls_cipher "); got != tc.tls {
				t.Errorf("over TLS %v, want %v:\n%s", got, tc.tls, m.header)
			}
			if want := "<p>test alert banned 10.10.10.10 for 4h</p>"; !strings.Contains(m.body, want) {
				t.Errorf("body %q, want %q", m.body, want)
			}
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		c := emailConfig(t, e, "refused", e.plain, "encryption_type = \"starttls\"\nauth_type = \"plain\"\nsmtp_username = \"rampart\"\nsmtp_password = \"nope\"")
		err := Send(context.Background(), c, alerts, 1)
		if err == nil || !strings.Contains(err.Error(), "authentication") {
			t.Errorf("Send with a wrong password: %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		c := emailConfig(t, e, "untrusted", e.tls, "")
		c.CACertPath = ""
		if err := Send(context.Background(), c, alerts, 1); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Send to a server with an unknown CA: %v", err)
		}
	})
}
