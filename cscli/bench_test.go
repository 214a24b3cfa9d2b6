package cscli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkImport1M imports a file of one million IPs into a fresh LAPI
// over a real SQLite file: go test ./cscli/ -run '^$' -bench Import1M -benchtime 1x
func BenchmarkImport1M(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		b.StopTimer()
		env := startLAPI(b)
		path := filepath.Join(env.dir, "1m.txt")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		w := bufio.NewWriter(f)
		for i := range n {
			fmt.Fprintf(w, "11.%d.%d.%d\n", i>>16, (i>>8)&255, i&255)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		b.StartTimer()

		out, errOut, err := env.run(b, nil, "decisions", "import", "-i", path)
		if err != nil || !strings.Contains(out, fmt.Sprintf("Imported %d decisions", n)) {
			b.Fatalf("import: %v\n%s\n%s", err, out, errOut)
		}
	}
}
