package exprhelpers

import (
	"time"

	"github.com/expr-lang/expr"
)

// extOptions registers the XML, stash, network and decision helpers
// (xml.go, stash.go, net.go, decisions.go) with upstream's signatures.
func (h *Helpers) extOptions() []expr.Option {
	return []expr.Option{
		expr.Function("XMLGetAttributeValue", func(p ...any) (any, error) {
			return h.XMLGetAttributeValue(str(p, 0), str(p, 1), str(p, 2)), nil
		}, new(func(string, string, string) string)),
		expr.Function("XMLGetNodeValue", func(p ...any) (any, error) {
			return h.XMLGetNodeValue(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),

		expr.Function("GetFromStash", func(p ...any) (any, error) {
			return h.GetFromStash(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),
		expr.Function("SetInStash", func(p ...any) (any, error) {
			var ttl *time.Duration
			if len(p) > 3 {
				switch d := p[3].(type) {
				case *time.Duration:
					ttl = d
				case time.Duration:
					ttl = &d
				}
			}
			h.SetInStash(str(p, 0), str(p, 1), str(p, 2), ttl)
			return nil, nil
		},
			new(func(string, string, string, *time.Duration) any),
			new(func(string, string, string, time.Duration) any),
		),

		expr.Function("HTTPGet", fn1(h.HTTPGet), sigStr),
		expr.Function("HTTPHead", func(p ...any) (any, error) {
			return h.HTTPHead(str(p, 0)), nil
		}, new(func(string) int)),
		expr.Function("HTTPPost", func(p ...any) (any, error) {
			return h.HTTPPost(str(p, 0), str(p, 1)), nil
		}, sigStr2Str),
		expr.Function("HTTPRequest", func(p ...any) (any, error) {
			return h.HTTPRequest(str(p, 0), str(p, 1), str(p, 2)), nil
		}, new(func(string, string, string) string)),
		expr.Function("LookupHost", func(p ...any) (any, error) {
			return h.LookupHost(str(p, 0)), nil
		}, new(func(string) []string)),
		expr.Function("CrowdsecCTI", func(p ...any) (any, error) {
			return h.CrowdsecCTI(str(p, 0))
		}, new(func(string) (any, error))),
		expr.Function("GetActiveDecisionsCount", func(p ...any) (any, error) {
			return h.GetActiveDecisionsCount(str(p, 0))
		}, new(func(string) int)),
		expr.Function("GetActiveDecisionsTimeLeft", func(p ...any) (any, error) {
			return h.GetActiveDecisionsTimeLeft(str(p, 0))
		}, new(func(string) time.Duration)),
		expr.Function("GetDecisionsCount", func(p ...any) (any, error) {
			return h.GetDecisionsCount(str(p, 0)), nil
		}, new(func(string) int)),
		expr.Function("GetDecisionsSinceCount", func(p ...any) (any, error) {
			return h.GetDecisionsSinceCount(str(p, 0), str(p, 1)), nil
		}, new(func(string, string) int)),
	}
}
