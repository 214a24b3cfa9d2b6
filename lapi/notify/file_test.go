package notify

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFileJSONLinesThroughBroker(t *testing.T) {
	st := testStore(t)
	path := filepath.Join(t.TempDir(), "alerts.log")
	// An indented template: each value still lands on one line.
	c := mustParse(t, `type = "file"
name = "f"
log_path = "`+path+`"
file_format = "json"
format = '''{{range .}}{
  "ip": {{.Source.IP | toJson}},
  "scenario": {{.Scenario | toJson}}
}
{{end}}'''`)
	b := runBroker(t, st, c)
	b.Enqueue([]string{"f"}, storeAlert(t, st, "192.0.2.1", "a/b"))
	b.Enqueue([]string{"f"}, storeAlert(t, st, "192.0.2.2", "c/d"))
	waitFor(t, "two messages", func() bool { return stats(b, "f").Sent == 2 })
	want := `{"ip":"192.0.2.1","scenario":"a/b"}` + "\n" + `{"ip":"192.0.2.2","scenario":"c/d"}` + "\n"
	if got := readFile(t, path); got != want {
		t.Errorf("file:\n%s\nwant\n%s", got, want)
	}
	// A text that is not JSON fails at once (no retry can fix it).
	bad := mustParse(t, "type = \"file\"\nname = \"bad\"\nlog_path = "+q(path)+"\nfile_format = \"json\"\nformat = \"not json\"")
	if err := Send(context.Background(), bad, nil, 3); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("non-JSON text: %v", err)
	}
}

func TestFileAppendsAndReopens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.log")
	c := mustParse(t, "type = \"file\"\nname = \"f\"\nlog_path = "+q(path)+"\nformat = \"x\"")
	s := newFileSender(c)
	defer s.close()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.send(ctx, "one\n"))
	// logrotate moves the file away: the next text starts a new one.
	must(os.Rename(path, path+".1"))
	must(s.send(ctx, "two\n"))
	if a, b := readFile(t, path+".1"), readFile(t, path); a != "one\n" || b != "two\n" {
		t.Errorf("after an outside rotation: old %q, new %q", a, b)
	}
	must(os.Remove(path))
	must(s.send(ctx, "three"))
	if got := readFile(t, path); got != "three" {
		t.Errorf("after removal: %q", got)
	}
	st, err := os.Stat(path)
	must(err)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.log")
	c := mustParse(t, `type = "file"
name = "f"
log_path = "`+path+`"
format = "x"
[rotate]
enabled = true
max_size = 1
max_files = 2
compress = true`)
	s := newFileSender(c)
	defer s.close()
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	s.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	chunk := strings.Repeat("a", 600<<10) // two would pass 1 MiB
	for i := range 5 {
		if err := s.send(context.Background(), string(rune('0'+i))+chunk[1:]); err != nil {
			t.Fatal(err)
		}
	}
	// Five chunks of 600 KiB in files of at most 1 MiB: one per file,
	// four rotations, the oldest two pruned (max_files = 2).
	rotated := s.rotated()
	if len(rotated) != 2 {
		t.Fatalf("rotated files %v, want 2", rotated)
	}
	for i, p := range rotated {
		if !strings.HasSuffix(p, ".gz") {
			t.Fatalf("%s not compressed", p)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Oldest first: chunks 2 and 3; the live file holds chunk 4.
		if len(data) != len(chunk) || data[0] != byte('2'+i) {
			t.Errorf("%s holds %d bytes starting %q", p, len(data), data[:1])
		}
	}
	if live := readFile(t, path); len(live) != len(chunk) || live[0] != '4' {
		t.Errorf("live file %d bytes starting %q", len(live), live[:1])
	}
	if !strings.HasSuffix(rotated[1], "n.log.20261207-100004.gz") {
		t.Errorf("rotated name %s", rotated[1])
	}
}

func TestFileMaxAge(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.log")
	old := path + ".20200101-000000"
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-10 * 24 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, "type = \"file\"\nname = \"f\"\nlog_path = "+q(path)+"\nformat = \"x\"\n[rotate]\nenabled = true\nmax_size = 1\nmax_age = 7")
	s := newFileSender(c)
	defer s.close()
	big := strings.Repeat("b", 700<<10)
	for range 2 {
		if err := s.send(context.Background(), big); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("a rotated file older than max_age is still there (%v)", err)
	}
	if r := s.rotated(); len(r) != 1 {
		t.Errorf("rotated %v, want the new one only", r)
	}
}
