package version

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOSRelease(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	debian := filepath.Join(dir, "debian")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(debian, []byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID='12'\nID=debian\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if n, v := osRelease(filepath.Join(dir, "missing"), empty, debian); n != "Debian GNU/Linux" || v != "12" {
		t.Errorf("got %q %q", n, v)
	}
	if n, v := osRelease(filepath.Join(dir, "missing")); n != "linux" || v != "" {
		t.Errorf("no file: got %q %q", n, v)
	}
}
