package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-ips/rampart/models"
)

// Login logs the machine in now (POST /v1/watchers/login) and keeps the
// token for the following calls. Calling it is optional: authenticated
// calls log in by themselves when needed. The agent calls it at start,
// where a failure is fatal.
func (c *Client) Login(ctx context.Context) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if err := c.checkCredentials(authMachine); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := c.acquireLogin(ctx); err != nil {
		return err
	}
	defer c.releaseLogin()
	_, err := c.login(ctx)
	return err
}

// validToken returns a token with more than a minute left, logging in when
// there is none.
func (c *Client) validToken(ctx context.Context) (string, error) {
	if tok, ok := c.currentToken(); ok {
		return tok, nil
	}
	if err := c.acquireLogin(ctx); err != nil {
		return "", err
	}
	defer c.releaseLogin()
	// Another caller may have logged in while this one waited.
	if tok, ok := c.currentToken(); ok {
		return tok, nil
	}
	return c.login(ctx)
}

func (c *Client) currentToken() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == "" || time.Until(c.expire) < reloginMargin {
		return "", false
	}
	return c.token, true
}

// dropToken forgets tok after the LAPI refused it, unless a newer token
// has already replaced it.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
		c.expire = time.Time{}
	}
}

func (c *Client) acquireLogin(ctx context.Context) error {
	select {
	case c.loginSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("login: waiting for a concurrent login: %w", context.Cause(ctx))
	}
}

func (c *Client) releaseLogin() { <-c.loginSem }

// login performs POST /v1/watchers/login and stores the token. The caller
// holds loginSem.
func (c *Client) login(ctx context.Context) (string, error) {
	machineID, password := c.machineID, c.password
	body := models.WatcherAuthRequest{
		MachineID: &machineID,
		Password:  &password,
		Scenarios: c.scenarios,
	}
	resp, u, err := c.send(ctx, request{method: http.MethodPost, path: "v1/watchers/login", body: body, auth: authNone})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized && strings.HasSuffix(ae.Message, " not validated") {
			// a registered machine waiting for the LAPI's administrator
			return "", fmt.Errorf("login: machine %s is not validated yet: run 'cscli machines validate %s' on the LAPI host (%w)", machineID, machineID, err)
		}
		return "", fmt.Errorf("login: %w", err)
	}
	defer closeBody(resp)

	var out models.WatcherAuthResponse
	if err := decodeJSON(resp, &out); err != nil {
		return "", fmt.Errorf("login: POST %s: decoding response: %w", u.EscapedPath(), err)
	}
	if out.Token == "" {
		return "", fmt.Errorf("login: POST %s: no token in response", u.EscapedPath())
	}
	var expire time.Time
	if err := expire.UnmarshalText([]byte(out.Expire)); err != nil {
		return "", fmt.Errorf("login: POST %s: parsing expire %q: %w", u.EscapedPath(), out.Expire, err)
	}

	c.mu.Lock()
	c.token, c.expire = out.Token, expire
	c.mu.Unlock()
	return out.Token, nil
}
