// Package apikey makes and hashes bouncer API keys. The LAPI checks keys
// with it and cscli creates them with it; it is its own package so cscli
// need not link the LAPI's HTTP server.
package apikey

import (
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// Hash is how keys are stored: lowercase SHA-512 hex.
func Hash(key string) string {
	sum := sha512.Sum512([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Generate returns a key as upstream's cscli makes them: 32 random bytes,
// standard base64 without padding.
func Generate() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating API key: %w", err)
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}
