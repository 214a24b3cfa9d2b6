package blocklists

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rampart-ips/rampart/apiclient"
	"github.com/rampart-ips/rampart/csconfig"
	"github.com/rampart-ips/rampart/internal/version"
)

// errNotModified: the feed has not changed since the last fetch.
var errNotModified = errors.New("not modified")

// source fetches one feed, remembering what it needs to ask for changes
// only (a URL's ETag and Last-Modified, a file's size and time).
type source struct {
	cfg    csconfig.Blocklist
	client *http.Client

	etag, lastModified string
	fileSize           int64
	fileTime           time.Time
}

func newSource(cfg csconfig.Blocklist) (*source, error) {
	s := &source{cfg: cfg}
	if cfg.URL == "" {
		return s, nil
	}
	tc, err := apiclient.TLSConfig(apiclient.TLSOptions{CACertPath: cfg.CACertPath, InsecureSkipVerify: cfg.InsecureSkipVerify})
	if err != nil {
		return nil, fmt.Errorf("blocklist %s: %w", cfg.Name, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	s.client = &http.Client{Transport: tr, Timeout: cfg.Timeout.Duration}
	return s, nil
}

// forget drops the validators, so that the next fetch reads the feed whole
// (after its content could not be stored).
func (s *source) forget() {
	s.etag, s.lastModified, s.fileSize, s.fileTime = "", "", 0, time.Time{}
}

// fetch returns the feed's content, or errNotModified.
func (s *source) fetch(ctx context.Context) ([]byte, error) {
	if s.cfg.URL == "" {
		return s.readFile()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", version.UserAgent("crowdsec"))
	for k, v := range s.cfg.Headers {
		req.Header.Set(k, v)
	}
	if s.etag != "" {
		req.Header.Set("If-None-Match", s.etag)
	}
	if s.lastModified != "" {
		req.Header.Set("If-Modified-Since", s.lastModified)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		return nil, errNotModified
	default:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("GET %s: %s", s.cfg.URL, resp.Status)
	}
	body, err := readMax(resp.Body, s.cfg.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", s.cfg.URL, err)
	}
	s.etag, s.lastModified = resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	return body, nil
}

func (s *source) readFile() ([]byte, error) {
	f, err := os.Open(s.cfg.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == s.fileSize && st.ModTime().Equal(s.fileTime) && !s.fileTime.IsZero() {
		return nil, errNotModified
	}
	body, err := readMax(f, s.cfg.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", s.cfg.File, err)
	}
	s.fileSize, s.fileTime = st.Size(), st.ModTime()
	return body, nil
}

// readMax reads r whole, refusing more than max bytes: a feed that grew
// beyond reason is refused rather than cut, which would drop entries.
func readMax(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the feed: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("the feed is larger than max_bytes (%d)", max)
	}
	return b, nil
}
