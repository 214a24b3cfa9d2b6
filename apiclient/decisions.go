package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/rampart-ips/rampart/models"
)

// GetDecisions returns the active decisions matching filter
// (GET /v1/decisions, bouncer authentication), e.g. ip=192.0.2.7. The
// LAPI's "null" for no match is an empty slice.
func (c *Client) GetDecisions(ctx context.Context, filter url.Values) ([]*models.Decision, error) {
	var out []*models.Decision
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/decisions", query: filter, auth: authBouncer}, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []*models.Decision{}
	}
	return out, nil
}

// DeleteDecisions expires the decisions matching filter
// (DELETE /v1/decisions; no filter expires them all) and returns how many.
func (c *Client) DeleteDecisions(ctx context.Context, filter url.Values) (int, error) {
	return c.deleteCount(ctx, "v1/decisions", filter)
}

// DeleteDecision expires one decision (DELETE /v1/decisions/{id}).
func (c *Client) DeleteDecision(ctx context.Context, id int64) (int, error) {
	return c.deleteCount(ctx, "v1/decisions/"+strconv.FormatInt(id, 10), nil)
}

// CountDecisions asks how many decisions cover value, an IP or a range
// (GET /v1/decisions/count, machine authentication, a Rampart addition):
// in all, active, and created within since when since is not "" (a Go
// duration, optionally with days). An upstream LAPI answers 404.
func (c *Client) CountDecisions(ctx context.Context, value, since string) (*models.DecisionCountsResponse, error) {
	q := url.Values{"value": {value}}
	if since != "" {
		q.Set("since", since)
	}
	var out models.DecisionCountsResponse
	if err := c.do(ctx, request{method: http.MethodGet, path: "v1/decisions/count", query: q, auth: authMachine}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stream pulls the decision stream (GET /v1/decisions/stream, bouncer
// authentication) and returns it whole. startup=true asks for the full
// snapshot; otherwise the LAPI answers with the delta since this key's last
// successful pull. extra carries filters such as scopes or origins. Both
// lists are non-nil, whether the LAPI sent [] or null.
//
// For large snapshots prefer StreamDecode, which never holds the body.
func (c *Client) Stream(ctx context.Context, startup bool, extra url.Values) (*models.StreamResponse, error) {
	out := &models.StreamResponse{New: []*models.Decision{}, Deleted: []*models.Decision{}}
	err := c.StreamDecode(ctx, startup, extra,
		func(d *models.Decision) error { out.New = append(out.New, d); return nil },
		func(d *models.Decision) error { out.Deleted = append(out.Deleted, d); return nil },
	)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StreamDecode pulls the decision stream like Stream but decodes the body
// token by token, calling onNew or onDeleted for each decision as it
// arrives, so a body of a million decisions is never held in memory. Each
// callback receives a fresh *Decision it may keep. A callback error stops
// the pull and is returned wrapped.
//
// Callbacks run in body order: a v1.7.8+ LAPI (and Rampart's) sends "new"
// before "deleted", older ones "deleted" first. A caller that must apply
// deletions before additions (as the firewall bouncer does within a batch)
// has to account for that itself.
//
// The call is bounded by ctx, or by the client's default timeout when ctx
// has no deadline; a long-poll needs a context with a longer deadline.
func (c *Client) StreamDecode(ctx context.Context, startup bool, extra url.Values,
	onNew, onDeleted func(*models.Decision) error) error {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()

	resp, u, err := c.send(ctx, request{method: http.MethodGet, path: "v1/decisions/stream", query: streamQuery(startup, extra), auth: authBouncer})
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if err := decodeStream(json.NewDecoder(resp.Body), onNew, onDeleted); err != nil {
		return fmt.Errorf("GET %s: %w", u.EscapedPath(), err)
	}
	return nil
}

// decodeStream walks {"new":[...],"deleted":[...]} (either key order, lists
// possibly null, unknown keys skipped).
func decodeStream(dec *json.Decoder, onNew, onDeleted func(*models.Decision) error) error {
	if err := expectDelim(dec, '{'); err != nil {
		return fmt.Errorf("decoding stream: %w", err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("decoding stream: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("decoding stream: unexpected %v where a key was expected", tok)
		}
		var fn func(*models.Decision) error
		switch key {
		case "new":
			fn = onNew
		case "deleted":
			fn = onDeleted
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fmt.Errorf("decoding stream: skipping %q: %w", key, err)
			}
			continue
		}
		if err := decodeDecisionList(dec, key, fn); err != nil {
			return err
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return fmt.Errorf("decoding stream: %w", err)
	}
	return nil
}

// decodeDecisionList reads one list (or null) and hands each element to fn.
func decodeDecisionList(dec *json.Decoder, key string, fn func(*models.Decision) error) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("decoding stream %q: %w", key, err)
	}
	if tok == nil {
		return nil // pre-v1.7.8 LAPIs send null for an empty list
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("decoding stream %q: expected a list, got %v", key, tok)
	}
	for i := 0; dec.More(); i++ {
		var d models.Decision
		if err := dec.Decode(&d); err != nil {
			return fmt.Errorf("decoding stream %q element %d: %w", key, i, err)
		}
		if fn == nil {
			continue
		}
		if err := fn(&d); err != nil {
			return fmt.Errorf("handling stream %q element %d: %w", key, i, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return fmt.Errorf("decoding stream %q: %w", key, err)
	}
	return nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("expected %q, got %v", want, tok)
	}
	return nil
}

// streamQuery builds the stream's query: the caller's filters plus the CAPI
// parameters upstream's client always sends (the LAPI ignores them), and
// startup only when true.
func streamQuery(startup bool, extra url.Values) url.Values {
	query := url.Values{}
	for k, v := range extra {
		query[k] = append([]string(nil), v...)
	}
	query.Set("community_pull", "false")
	query.Set("additional_pull", "false")
	if startup {
		query.Set("startup", "true")
	} else {
		query.Del("startup")
	}
	return query
}
