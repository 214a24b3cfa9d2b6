package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rampart-ips/rampart/apiclient"
)

// Email encryption and authentication, upstream's values.
const (
	encSSLTLS   = "ssltls"
	encSTARTTLS = "starttls"
	encNone     = "none"

	authLogin   = "login"
	authPlain   = "plain"
	authCRAMMD5 = "crammd5"
	authNone    = "none"
)

// defaultSMTPTimeout bounds the connection and the sending when
// connect_timeout and send_timeout are unset (upstream's library default).
const defaultSMTPTimeout = 10 * time.Second

// checkEmail validates an email notification and applies upstream's
// defaults.
func (c *Config) checkEmail() error {
	if c.SMTPHost == "" {
		return errors.New("missing smtp_host")
	}
	if len(c.ReceiverEmails) == 0 {
		return errors.New("missing receiver_emails")
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = 25
	}
	if c.SMTPPort < 0 || c.SMTPPort > 65535 {
		return fmt.Errorf("smtp_port %d is not a port", c.SMTPPort)
	}
	if c.SenderEmail == "" {
		c.SenderEmail = "crowdsec@crowdsec.local"
	}
	if c.SenderName == "" {
		c.SenderName = "Crowdsec"
	}
	if c.EmailSubject == "" {
		c.EmailSubject = "Crowdsec notification"
	}
	if c.HeloHost == "" {
		c.HeloHost = "localhost"
	}
	if c.EncryptionType == "" {
		c.EncryptionType = encSSLTLS
	}
	switch c.EncryptionType {
	case encSSLTLS, encSTARTTLS, encNone:
	default:
		return fmt.Errorf("encryption_type must be %s, %s or %s, not %q", encSSLTLS, encSTARTTLS, encNone, c.EncryptionType)
	}
	if c.AuthType == "" {
		c.AuthType = authLogin
		if c.SMTPUsername == "" {
			c.AuthType = authNone
		}
	}
	switch c.AuthType {
	case authLogin, authPlain, authCRAMMD5:
		if c.SMTPUsername == "" {
			return fmt.Errorf("auth_type %s needs smtp_username", c.AuthType)
		}
	case authNone:
	default:
		return fmt.Errorf("auth_type must be %s, %s, %s or %s, not %q", authLogin, authPlain, authCRAMMD5, authNone, c.AuthType)
	}
	if _, err := mail.ParseAddress(c.SenderEmail); err != nil {
		return fmt.Errorf("sender_email %q: %w", c.SenderEmail, err)
	}
	for _, r := range c.ReceiverEmails {
		if _, err := mail.ParseAddress(r); err != nil {
			return fmt.Errorf("receiver_emails: %q: %w", r, err)
		}
	}
	if c.ConnectTimeout.Duration == 0 {
		c.ConnectTimeout.Duration = defaultSMTPTimeout
	}
	if c.SendTimeout.Duration == 0 {
		c.SendTimeout.Duration = defaultSMTPTimeout
	}
	if _, err := c.smtpTLS(); err != nil {
		return err
	}
	return nil
}

// smtpTLS is the TLS configuration towards the SMTP server, from the one
// TLS builder; the server name is the host's.
func (c *Config) smtpTLS() (*tls.Config, error) {
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: c.CACertPath, InsecureSkipVerify: c.SkipTLSVerification})
	if err != nil {
		return nil, err
	}
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.ServerName = c.SMTPHost
	return tc, nil
}

// emailSender sends the rendered text as the HTML body of a mail.
type emailSender struct{ cfg *Config }

func (e *emailSender) close() error { return nil }

func (e *emailSender) send(ctx context.Context, text string) error {
	c := e.cfg
	addr := net.JoinHostPort(c.SMTPHost, strconv.Itoa(c.SMTPPort))
	d := net.Dialer{Timeout: c.ConnectTimeout.Duration}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", addr, err)
	}
	defer conn.Close()
	// The whole exchange within send_timeout and the attempt's context.
	deadline := time.Now().Add(c.SendTimeout.Duration)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	tc, err := c.smtpTLS()
	if err != nil {
		return err
	}
	if c.EncryptionType == encSSLTLS {
		tconn := tls.Client(conn, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS with %s: %w", addr, err)
		}
		conn = tconn
	}
	cl, err := smtp.NewClient(conn, c.SMTPHost)
	if err != nil {
		return fmt.Errorf("SMTP greeting from %s: %w", addr, err)
	}
	defer cl.Close()
	if err := cl.Hello(c.HeloHost); err != nil {
		return fmt.Errorf("SMTP HELO: %w", err)
	}
	if c.EncryptionType == encSTARTTLS {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return fmt.Errorf("%s does not offer STARTTLS (encryption_type = %q)", addr, encSTARTTLS)
		}
		if err := cl.StartTLS(tc); err != nil {
			return fmt.Errorf("SMTP STARTTLS: %w", err)
		}
	}
	if a := c.smtpAuth(); a != nil {
		if err := cl.Auth(a); err != nil {
			return fmt.Errorf("SMTP authentication (%s): %w", c.AuthType, err)
		}
	}
	if err := cl.Mail(c.SenderEmail); err != nil {
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	for _, r := range c.ReceiverEmails {
		if err := cl.Rcpt(r); err != nil {
			return fmt.Errorf("SMTP RCPT TO %s: %w", r, err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(c.message(text, time.Now())); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	// The server has the mail once DATA is accepted; a failed QUIT does
	// not make it a failure to retry (which would send it twice).
	_ = cl.Quit()
	return nil
}

// message is the mail: headers, then the text as a quoted-printable HTML
// body (SMTP lines are limited to 998 bytes; a rendered alert is not).
func (c *Config) message(text string, now time.Time) []byte {
	var b bytes.Buffer
	from := mail.Address{Name: c.SenderName, Address: c.SenderEmail}
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", from.String())
	hdr("To", strings.Join(c.ReceiverEmails, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", c.EmailSubject))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+uuid.NewString()+"@"+c.HeloHost+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", `text/html; charset="utf-8"`)
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(text))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// smtpAuth is the configured mechanism; nil for none.
func (c *Config) smtpAuth() smtp.Auth {
	switch c.AuthType {
	case authPlain:
		// net/smtp refuses PLAIN without TLS except towards localhost.
		return smtp.PlainAuth("", c.SMTPUsername, c.SMTPPassword, c.SMTPHost)
	case authCRAMMD5:
		return smtp.CRAMMD5Auth(c.SMTPUsername, c.SMTPPassword)
	case authLogin:
		return &loginAuth{user: c.SMTPUsername, pass: c.SMTPPassword, host: c.SMTPHost}
	}
	return nil
}

// loginAuth is the LOGIN mechanism, which net/smtp lacks. Like PLAIN it
// sends the password as it is: only over TLS, or to localhost.
type loginAuth struct{ user, pass, host string }

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLocalhost(server.Name) {
		return "", nil, errors.New("unencrypted connection: LOGIN would send the password in clear")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(fromServer))) {
	case "username:":
		return []byte(a.user), nil
	case "password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge %q", fromServer)
}

func isLocalhost(name string) bool {
	if name == "localhost" {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}
