package stricttoml

import (
	"strings"
	"testing"
)

// FuzzDecode: any bytes give a decoded value or an error that starts with
// the file name, never a panic.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"name = \"x\"\n[sub.deep]\non = true\nof = 1\n",
		"[[source]]\nkind = \"a\"\ninner = { A = 1, B = 2 }\n[[source]]\nknd = 1\n",
		"sub = { deep = { on = true, x = 1 } }\n",
		"[sub]\n\"deep\".'off' = true\n",
		"count = \"many\"\n",
		"[[[",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v target
		if _, err := Decode(data, "f.toml", &v); err != nil && !strings.HasPrefix(err.Error(), "f.toml") {
			t.Fatalf("error without the file name: %v", err)
		}
	})
}
