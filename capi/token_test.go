package capi

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// tokenExpiry decodes the payload by hand; it must read what the JWT
// library writes, and refuse what is not a JWT.
func TestTokenExpiry(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"exp": exp.Unix(), "organization_id": "org", "subscription_type": "COMMUNITY",
	}).SignedString([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	got, claims := tokenExpiry(tok)
	if !got.Equal(exp) {
		t.Errorf("expiry %v, want %v", got, exp)
	}
	if claims["organization_id"] != "org" || claims["subscription_type"] != "COMMUNITY" {
		t.Errorf("claims %v", claims)
	}
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"}).SignedString([]byte("secret"))
	if got, claims := tokenExpiry(noExp); !got.IsZero() || claims["sub"] != "x" {
		t.Errorf("token without exp: %v %v", got, claims)
	}
	for _, bad := range []string{"", "abc", "a.b.c", "a.!!!.c", "a.bnVsbA.c"} {
		if got, _ := tokenExpiry(bad); !got.IsZero() {
			t.Errorf("tokenExpiry(%q) = %v, want zero", bad, got)
		}
	}
}
