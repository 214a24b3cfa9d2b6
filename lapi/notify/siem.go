package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// splunkEvent is the body of a Splunk HTTP Event Collector request: the
// rendered text as one event, as upstream's splunk plugin sends it.
type splunkEvent struct {
	Event string `json:"event"`
}

// checkSplunk validates a splunk notification. Unlike upstream's plugin,
// which never verifies the collector's certificate, TLS is verified
// unless skip_tls_verification says otherwise (ca_cert_path adds a CA).
func (c *Config) checkSplunk() error {
	if err := checkURL(c.URL); err != nil {
		return err
	}
	if c.Token == "" {
		return errors.New("missing token")
	}
	if _, err := c.httpClient(); err != nil {
		return err
	}
	return nil
}

// sentinelAPI is the resource the Data Collector API serves and signs.
const sentinelAPI = "/api/logs"

// logTypeRE is what Azure accepts as a record type.
var logTypeRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,100}$`)

// checkSentinel validates a sentinel notification.
func (c *Config) checkSentinel() error {
	if c.CustomerID == "" {
		return errors.New("missing customer_id (the Log Analytics workspace id)")
	}
	if c.SharedKey == "" {
		return errors.New("missing shared_key (the workspace's primary or secondary key)")
	}
	if _, err := base64.StdEncoding.DecodeString(c.SharedKey); err != nil {
		return fmt.Errorf("shared_key is not base64: %w", err)
	}
	if !logTypeRE.MatchString(c.LogType) {
		return fmt.Errorf("log_type %q: want 1 to 100 letters, digits or underscores", c.LogType)
	}
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			return err
		}
	}
	return nil
}

// sentinelURL is where a sentinel notification posts: the url key (a
// sovereign cloud's endpoint, say), else the public cloud's for the
// workspace.
func (c *Config) sentinelURL() string {
	if c.URL != "" {
		return c.URL
	}
	return "https://" + c.CustomerID + ".ods.opinsights.azure.com" + sentinelAPI + "?api-version=2016-04-01"
}

// signSentinel sets the headers of a Data Collector request carrying a
// JSON body of n bytes: its date and the SharedKey signature over it
// (HMAC-SHA256, keyed by the decoded shared key, of the method, length,
// content type, x-ms-date and resource, one per line), the record type,
// and the time field when configured.
func (c *Config) signSentinel(h http.Header, n int, now time.Time) error {
	key, err := base64.StdEncoding.DecodeString(c.SharedKey)
	if err != nil {
		return fmt.Errorf("shared_key: %w", err)
	}
	// RFC 1123 with "GMT", which Azure requires (time.RFC1123 says UTC).
	date := now.UTC().Format(http.TimeFormat)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("POST\n" + strconv.Itoa(n) + "\napplication/json\nx-ms-date:" + date + "\n" + sentinelAPI))
	h.Set("Content-Type", "application/json")
	h.Set("Authorization", "SharedKey "+c.CustomerID+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	h.Set("Log-Type", c.LogType)
	h.Set("x-ms-date", date)
	if c.TimeGeneratedField != "" {
		h.Set("time-generated-field", c.TimeGeneratedField)
	}
	return nil
}
