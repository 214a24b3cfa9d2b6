package apikey

import (
	"encoding/base64"
	"testing"
)

func TestHash(t *testing.T) {
	// echo -n key | sha512sum
	const want = "8335fa56d487562de248f47befc72743334051ddffcc2c09275f665454990317594745ee17c08f798cd7dce0ba8155dcda14f6398c1d1545116520a133017c09"
	if got := Hash("key"); got != want {
		t.Errorf("Hash(key) = %q, want %q", got, want)
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate()
	raw, err := base64.RawStdEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 || len(a) != 43 || a == b {
		t.Errorf("keys %q and %q: want distinct unpadded base64 of 32 bytes (%v)", a, b, err)
	}
}
