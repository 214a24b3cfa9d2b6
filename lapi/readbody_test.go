package lapi

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// readBody sizes its buffer from the gzip trailer, which is the sender's
// word: a trailer that lies, a stream of several members, and bodies over
// the limit (compressed or inflated) must come out as before.
func TestReadBodyGzip(t *testing.T) {
	const limit = 1 << 20
	random := make([]byte, limit-100)
	rand.Read(random)
	withISize := func(z []byte, n uint32) []byte {
		z = bytes.Clone(z)
		binary.LittleEndian.PutUint32(z[len(z)-4:], n)
		return z
	}
	text := bytes.Repeat([]byte(`{"key":"source_ip","value":"192.0.2.1"},`), 1000)
	for _, c := range []struct {
		name   string
		body   []byte
		gzip   bool
		want   []byte
		status int
	}{
		{"plain", text, false, text, 0},
		{"gzipped", gzipBytes(t, text), true, text, 0},
		{"empty", gzipBytes(t), true, []byte{}, 0},
		{"incompressible, just under the limit", gzipBytes(t, random), true, random, 0},
		{"two members", append(gzipBytes(t, text), gzipBytes(t, []byte("x"))...), true, append(bytes.Clone(text), 'x'), 0},
		// A lying trailer fails the checksum, as it always did, whatever
		// buffer it made readBody allocate.
		{"trailer claims 4 GiB", withISize(gzipBytes(t, text), 1<<32-1), true, nil, http.StatusBadRequest},
		{"trailer claims 1 byte", withISize(gzipBytes(t, text), 1), true, nil, http.StatusBadRequest},
		{"inflates over the limit", gzipBytes(t, bytes.Repeat([]byte("a"), limit+1)), true, nil, http.StatusRequestEntityTooLarge},
		{"compressed over the limit", gzipBytes(t, random, random), true, nil, http.StatusRequestEntityTooLarge},
		{"plain over the limit", bytes.Repeat([]byte("a"), limit+1), false, nil, http.StatusRequestEntityTooLarge},
		{"not gzip", text, true, nil, http.StatusBadRequest},
		{"truncated gzip", gzipBytes(t, text)[:100], true, nil, http.StatusBadRequest},
	} {
		req := httptest.NewRequest("POST", "/v1/alerts", bytes.NewReader(c.body))
		if c.gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		got, status, err := readBody(echo.New().NewContext(req, httptest.NewRecorder()), limit)
		if status != c.status || (err == nil) != (c.status == 0) {
			t.Errorf("%s: status %d, error %v; want %d", c.name, status, err, c.status)
			continue
		}
		if c.status == 0 && !bytes.Equal(got, c.want) {
			t.Errorf("%s: read %d bytes, want %d", c.name, len(got), len(c.want))
		}
	}
}
