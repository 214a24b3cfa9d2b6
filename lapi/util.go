package lapi

import (
	"encoding/base64"
	"encoding/json"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
