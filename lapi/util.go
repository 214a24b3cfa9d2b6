package lapi

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
)

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// pemDecode returns the DER bytes of the next PEM block, or nil.
func pemDecode(data []byte) ([]byte, []byte) {
	blk, rest := pem.Decode(data)
	if blk == nil {
		return nil, nil
	}
	return blk.Bytes, rest
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
