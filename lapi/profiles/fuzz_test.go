package profiles

import (
	"os"
	"testing"
)

// FuzzParse: any bytes as profiles.toml give compiled profiles or an
// error, never a panic (expressions are compiled too).
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../config/profiles.toml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[[profile]]\nname = \"x\"\nfilters = [\"Alert.Remediation == true\"]\n[[profile.decisions]]\ntype = \"ban\"\nduration = \"100000d\"\n"))
	f.Add([]byte("[[profile]]\nname = \"y\"\nfilters = [\"1 +\"]\nduration_expr = \"Sprintf('%dh', 1)\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := Parse(data, "fuzz.toml")
		if err != nil || len(ps) == 0 {
			return
		}
		_, _ = NewSet(ps)
	})
}
