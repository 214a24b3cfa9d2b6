package apiclient

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"
)

// maxErrorBody caps how much of an error body is read, and maxRawMessage
// how much of a non-JSON one ends up in the message.
const (
	maxErrorBody  = 64 << 10
	maxRawMessage = 1024
)

// APIError is an answer outside 2xx. Message comes from the body's
// "message" (and "errors") JSON fields when present, else the raw body,
// else the status text.
type APIError struct {
	Method  string // e.g. "GET"
	Path    string // escaped URL path, e.g. "/v1/alerts"
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, e.Message)
}

func newAPIError(method, path string, resp *http.Response) *APIError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return &APIError{
		Method:  method,
		Path:    path,
		Status:  resp.StatusCode,
		Message: errorMessage(resp.StatusCode, raw),
	}
}

// errorMessage extracts the human part of an error body the way upstream's
// client shows it: "message (errors)".
func errorMessage(status int, raw []byte) string {
	var body struct {
		Message string `json:"message"`
		Errors  string `json:"errors"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Message != "" || body.Errors != "") {
		switch {
		case body.Message == "":
			return body.Errors
		case body.Errors == "":
			return body.Message
		default:
			return body.Message + " (" + body.Errors + ")"
		}
	}
	msg := strings.TrimSpace(string(raw))
	if msg == "" {
		if text := http.StatusText(status); text != "" {
			return text
		}
		return "no response body"
	}
	if len(msg) > maxRawMessage {
		cut := maxRawMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "..."
	}
	return msg
}
