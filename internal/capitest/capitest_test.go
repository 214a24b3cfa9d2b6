package capitest

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// The enroll endpoint takes upstream's shape only: what a client gets
// wrong there is refused, not recorded.
func TestEnrollShape(t *testing.T) {
	s := Start(t)
	s.AddMachine("m", "p")
	post := func(path, tok, body string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.URL()+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	resp, err := http.Post(s.URL()+"v3/watchers/login", "application/json", bytes.NewBufferString(`{"machine_id":"m","password":"p","scenarios":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	var login struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	tok := login.Token
	if tok == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	for body, want := range map[string]int{
		`{"attachment_key":"k","name":"n","tags":[],"autoenroll":false}`:                   http.StatusAccepted,
		`{"name":"n","tags":[],"autoenroll":true}`:                                         http.StatusAccepted,
		`{"attachment_key":"k","name":"n","tags":null,"autoenroll":false}`:                 http.StatusUnprocessableEntity,
		`{"attachment_key":"k","name":"n","autoenroll":false}`:                             http.StatusUnprocessableEntity,
		`{"attachment_key":"k","name":"n","tags":[],"overwrite":false,"autoenroll":false}`: http.StatusUnprocessableEntity,
		`{"attachment_key":"","name":"n","tags":[],"autoenroll":true}`:                     http.StatusUnprocessableEntity,
		`{"attachment_key":"k","name":"n","tags":[],"autoenroll":true}`:                    http.StatusUnprocessableEntity,
		`{"name":"n","tags":[],"autoenroll":false}`:                                        http.StatusUnprocessableEntity,
		`{"attachment_key":"k","name":"n","tags":[],"autoenroll":false,"extra":1}`:         http.StatusUnprocessableEntity,
		`{"attachment_key":"k","tags":[],"autoenroll":false}`:                              http.StatusUnprocessableEntity,
	} {
		if got := post("v3/watchers/enroll", tok, body); got != want {
			t.Errorf("%s: %d, want %d", body, got, want)
		}
	}
	if got := post("v3/watchers/enroll", "bogus", `{"name":"n","tags":[],"autoenroll":true}`); got != http.StatusUnauthorized {
		t.Errorf("without a valid token: %d", got)
	}
	if n := len(s.Enrolls()); n != 2 {
		t.Errorf("%d requests recorded, want the 2 valid ones", n)
	}
}
