package profiles

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/internal/netaddr"
	"github.com/rampart-ips/rampart/models"
)

// Counter answers the expression helpers that need decision history. The
// LAPI's store implements it; this package never queries the database
// itself. value is an IP or a CIDR range, and a decision counts when its
// range covers value (upstream's semantics): a value that is neither is an
// error.
type Counter interface {
	// DecisionsCount counts every decision (active or not) for value.
	DecisionsCount(ctx context.Context, value string) (int, error)
	// DecisionsSinceCount counts the decisions for value created after since.
	DecisionsSinceCount(ctx context.Context, value string, since time.Time) (int, error)
	// ActiveDecisionsCount counts the unexpired decisions for value.
	ActiveDecisionsCount(ctx context.Context, value string) (int, error)
	// ActiveDecisionsTimeLeft returns the longest time left among the
	// unexpired decisions for value (0 when there is none).
	ActiveDecisionsTimeLeft(ctx context.Context, value string) (time.Duration, error)
}

// EvalError is returned by Evaluate when a filter of a profile without
// on_error fails to evaluate; the LAPI answers it with a 500, as upstream.
type EvalError struct {
	Profile string // profile name
	Filter  string // the expression that failed
	Err     error
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("profile %q: while running expression %s: %v", e.Profile, e.Filter, e.Err)
}

func (e *EvalError) Unwrap() error { return e.Err }

// errNoCounter is what the history helpers fail with when Evaluate was
// given no Counter.
var errNoCounter = errors.New("no decision counter available")

// Set is a compiled, ordered list of enabled profiles. It is immutable and
// safe for concurrent use.
type Set struct {
	profiles []*compiled
	now      func() time.Time
	// refs maps each notification name to the profiles naming it,
	// disabled ones included (so that enabling one cannot reveal a name
	// that does not exist).
	refs map[string][]string
	// enabledRefs is refs without the disabled profiles.
	enabledRefs map[string][]string
	// notifies: some enabled profile has notifications.
	notifies bool
}

// compiled is a validated profile with its expressions compiled once.
type compiled struct {
	name         string
	filters      []string
	programs     []*vm.Program
	decisions    []DecisionTemplate
	durationExpr *vm.Program
	onSuccess    string
	onError      string
	notify       []string
	log          *logrus.Entry
	debug        bool
}

// env is the per-evaluation expression environment. Its exported field and
// methods are what filters and duration_expr can use; the unexported fields
// carry the caller's context and Counter, so the compiled programs hold no
// per-request state.
type env struct {
	Alert *models.Alert

	ctx     context.Context
	counter Counter
	now     func() time.Time
	log     *logrus.Entry
}

// GetDecisionsCount returns how many decisions (expired included) exist
// for value.
func (e *env) GetDecisionsCount(value string) (int, error) {
	if e.counter == nil {
		return 0, errNoCounter
	}
	if !e.isAddress("GetDecisionsCount", value) {
		return 0, nil
	}
	return e.counter.DecisionsCount(e.ctx, value)
}

// isAddress says whether value can have decisions; upstream's
// GetDecisionsCount and GetDecisionsSinceCount log and count 0 for any
// other value, where the Active helpers fail (the Counter's error).
func (e *env) isAddress(helper, value string) bool {
	if _, err := netaddr.ParsePrefix(value); err != nil {
		e.log.WithField("value", value).Warnf("%s: not an IP address or range, counting 0", helper)
		return false
	}
	return true
}

// GetDecisionsSinceCount returns how many decisions for value were created
// within the last since (a duration such as "1h" or "7d").
func (e *env) GetDecisionsSinceCount(value string, since string) (int, error) {
	d, err := models.ParseDuration(since)
	if err != nil {
		return 0, fmt.Errorf("GetDecisionsSinceCount: %w", err)
	}
	if e.counter == nil {
		return 0, errNoCounter
	}
	if !e.isAddress("GetDecisionsSinceCount", value) {
		return 0, nil
	}
	return e.counter.DecisionsSinceCount(e.ctx, value, e.now().UTC().Add(-d))
}

// GetActiveDecisionsCount returns how many unexpired decisions exist for
// value.
func (e *env) GetActiveDecisionsCount(value string) (int, error) {
	if e.counter == nil {
		return 0, errNoCounter
	}
	return e.counter.ActiveDecisionsCount(e.ctx, value)
}

// GetActiveDecisionsTimeLeft returns the longest time left among the
// unexpired decisions for value.
func (e *env) GetActiveDecisionsTimeLeft(value string) (time.Duration, error) {
	if e.counter == nil {
		return 0, errNoCounter
	}
	return e.counter.ActiveDecisionsTimeLeft(e.ctx, value)
}

// Sprintf is fmt.Sprintf.
func (e *env) Sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// Atof parses a float; like upstream it logs and returns 0 on bad input.
func (e *env) Atof(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		e.log.Warnf("Atof: can't convert %q: %v", s, err)
		return 0
	}
	return f
}

// Lower is strings.ToLower.
func (e *env) Lower(s string) string { return strings.ToLower(s) }

// Upper is strings.ToUpper.
func (e *env) Upper(s string) string { return strings.ToUpper(s) }

// IpInRange reports whether ip is inside the CIDR; like upstream it logs
// and returns false when either does not parse.
func (e *env) IpInRange(ip, cidr string) bool {
	addr, err := netaddr.ParseAddr(ip)
	if err != nil {
		e.log.Warnf("IpInRange: invalid ip %q: %v", ip, err)
		return false
	}
	if !strings.Contains(cidr, "/") {
		e.log.Warnf("IpInRange: invalid range %q: not a CIDR", cidr)
		return false
	}
	prefix, err := netaddr.ParsePrefix(cidr)
	if err != nil {
		e.log.Warnf("IpInRange: invalid range %q: %v", cidr, err)
		return false
	}
	return prefix.Contains(addr)
}

// NewSet validates and compiles profiles (every expression exactly once)
// and keeps the enabled ones, in order. Disabled profiles are checked too, so
// that enabling one later cannot reveal a broken expression. An empty Set is
// valid and never produces decisions.
func NewSet(profiles []*Profile) (*Set, error) {
	s := &Set{now: time.Now, refs: map[string][]string{}, enabledRefs: map[string][]string{}}
	for i, p := range profiles {
		if p == nil {
			return nil, fmt.Errorf("profile #%d is nil", i+1)
		}
		if err := p.validate(i); err != nil {
			return nil, err
		}
		c, err := compile(p, i)
		if err != nil {
			return nil, err
		}
		for _, n := range p.Notifications {
			if !slices.Contains(s.refs[n], p.Name) {
				s.refs[n] = append(s.refs[n], p.Name)
				if p.IsEnabled() {
					s.enabledRefs[n] = append(s.enabledRefs[n], p.Name)
				}
			}
		}
		if p.IsEnabled() {
			s.profiles = append(s.profiles, c)
			s.notifies = s.notifies || len(c.notify) > 0
		}
	}
	return s, nil
}

// exprOptions are the compile options shared by every expression.
func exprOptions(extra ...expr.Option) []expr.Option {
	return append([]expr.Option{expr.Env(&env{})}, extra...)
}

func compile(p *Profile, idx int) (*compiled, error) {
	where := p.label(idx)
	c := &compiled{
		name:      p.Name,
		filters:   append([]string(nil), p.Filters...),
		decisions: append([]DecisionTemplate(nil), p.Decisions...),
		onSuccess: p.OnSuccess,
		onError:   p.OnError,
		notify:    append([]string(nil), p.Notifications...),
		debug:     p.Debug,
	}
	if c.onSuccess == "" {
		c.onSuccess = Continue
	}
	for i, f := range p.Filters {
		prog, err := expr.Compile(f, exprOptions(expr.AsBool())...)
		if err != nil {
			return nil, fmt.Errorf("%s: filter #%d %q: %w", where, i+1, f, err)
		}
		c.programs = append(c.programs, prog)
	}
	if p.DurationExpr != "" {
		prog, err := expr.Compile(p.DurationExpr, exprOptions()...)
		if err != nil {
			return nil, fmt.Errorf("%s: duration_expr %q: %w", where, p.DurationExpr, err)
		}
		c.durationExpr = prog
	}
	c.log = newLogger(p.Debug).WithField("profile", p.Name)
	return c, nil
}

// newLogger returns the standard logger, or for a debug profile a copy of
// it that logs at debug level, as upstream does per profile.
func newLogger(debug bool) *logrus.Logger {
	std := logrus.StandardLogger()
	if !debug {
		return std
	}
	l := logrus.New()
	l.SetOutput(std.Out)
	l.SetFormatter(std.Formatter)
	l.SetReportCaller(std.ReportCaller)
	l.ReplaceHooks(std.Hooks)
	l.SetLevel(logrus.DebugLevel)
	return l
}

// Names returns the names of the enabled profiles, in evaluation order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.profiles))
	for _, p := range s.profiles {
		names = append(names, p.name)
	}
	return names
}

// Notifications maps each notification name profiles use to the names of
// the profiles naming it, disabled profiles included: every name must
// exist, even one that only a disabled profile uses.
func (s *Set) Notifications() map[string][]string { return cloneRefs(s.refs) }

// EnabledNotifications is Notifications without the disabled profiles:
// the notifications alerts can reach.
func (s *Set) EnabledNotifications() map[string][]string { return cloneRefs(s.enabledRefs) }

func cloneRefs(refs map[string][]string) map[string][]string {
	out := make(map[string][]string, len(refs))
	for n, ps := range refs {
		out[n] = slices.Clone(ps)
	}
	return out
}

// Outcome is what the profiles make of an alert.
type Outcome struct {
	// Decisions to attach to an alert that came without any.
	Decisions []*models.Decision
	// Notify names the notifications of every matching profile, in
	// profile order, each once.
	Notify []string
}

// Evaluate runs the profiles, in order, against an alert that carries no
// decisions and returns the decisions to attach to it (nil when no profile
// yields any). The alert is not modified.
//
// A profile matches when any of its filters is true (filters are tried in
// order until one is); it contributes one copy of its decisions. Only the
// first matching profile that yields decisions fills the result; a match
// with on_success = "break" stops the evaluation. When a filter fails,
// on_error decides: "apply" counts as a match without decisions; "continue",
// "ignore" and "break" go on with the next profile (upstream's "break"
// behaves the same way); unset returns an *EvalError.
//
// Each generated decision has the template's type, the template's scope or
// else the alert's source scope, the source value, the alert scenario,
// origin "crowdsec" (or "crowdsec/<origin>"), and the template's duration
// as written, unless duration_expr yields a valid duration.
func (s *Set) Evaluate(ctx context.Context, alert *models.Alert, counter Counter) ([]*models.Decision, error) {
	o, err := s.Apply(ctx, alert, counter)
	return o.Decisions, err
}

// Apply is Evaluate, also saying which notifications the alert goes to.
func (s *Set) Apply(ctx context.Context, alert *models.Alert, counter Counter) (Outcome, error) {
	return s.run(ctx, alert, counter, true)
}

// Notify runs the profiles against an alert that came with its decisions
// (cscli decisions add, an agent's own) and names the notifications of
// the matching ones, as upstream does; nothing is generated. It does no
// work when no profile has notifications.
func (s *Set) Notify(ctx context.Context, alert *models.Alert, counter Counter) ([]string, error) {
	if !s.notifies {
		return nil, nil
	}
	o, err := s.run(ctx, alert, counter, false)
	return o.Notify, err
}

// run evaluates the profiles in order; generate: fill Decisions.
func (s *Set) run(ctx context.Context, alert *models.Alert, counter Counter, generate bool) (Outcome, error) {
	var o Outcome
	if alert == nil {
		return o, errors.New("profiles: nil alert")
	}
	if alert.Source == nil {
		return o, errors.New("profiles: alert has no source")
	}
	for _, p := range s.profiles {
		if err := ctx.Err(); err != nil {
			return Outcome{}, err
		}
		e := &env{Alert: alert, ctx: ctx, counter: counter, now: s.now, log: p.log}
		matched, err := p.match(e)
		if err != nil {
			switch p.onError {
			case Apply:
				// A match for on_success's sake, without decisions.
				p.log.Warnf("applying profile despite error: %v", err)
				matched = true
			case Continue, Ignore, Break:
				p.log.Warnf("skipping profile (on_error = %q): %v", p.onError, err)
				continue
			default:
				return Outcome{}, err
			}
		}
		if !matched {
			continue
		}
		if generate && err == nil && len(o.Decisions) == 0 {
			o.Decisions = p.generate(e)
		}
		for _, n := range p.notify {
			if !slices.Contains(o.Notify, n) {
				o.Notify = append(o.Notify, n)
			}
		}
		if p.onSuccess == Break {
			break
		}
	}
	return o, nil
}

// match reports whether any filter is true, stopping at the first one.
func (c *compiled) match(e *env) (bool, error) {
	for i, prog := range c.programs {
		res, err := expr.Run(prog, e)
		if err != nil {
			return false, &EvalError{Profile: c.name, Filter: c.filters[i], Err: err}
		}
		b, ok := res.(bool)
		if !ok {
			return false, &EvalError{Profile: c.name, Filter: c.filters[i],
				Err: fmt.Errorf("result is %T, not bool", res)}
		}
		if c.debug {
			c.log.Debugf("filter %q: %v", c.filters[i], b)
		}
		if b {
			return true, nil
		}
	}
	return false, nil
}

// generate builds one copy of the profile's decisions for the alert.
func (c *compiled) generate(e *env) []*models.Decision {
	if len(c.decisions) == 0 {
		return nil
	}
	override := c.duration(e)
	alert := e.Alert
	out := make([]*models.Decision, 0, len(c.decisions))
	for _, t := range c.decisions {
		d := &models.Decision{
			Type:     t.Type,
			Scope:    alert.Source.Scope,
			Value:    alert.Source.Value,
			Origin:   "crowdsec",
			Scenario: alert.Scenario,
			Duration: t.Duration,
		}
		if t.Scope != "" {
			d.Scope = models.NormalizeScope(t.Scope)
		}
		if t.Origin != "" {
			d.Origin = "crowdsec/" + t.Origin
		}
		if override != "" {
			d.Duration = override
		}
		if c.debug {
			c.log.Debugf("decision: %s %s:%s for %s", d.Type, d.Scope, d.Value, d.Duration)
		}
		out = append(out, d)
	}
	return out
}

// duration runs duration_expr and returns its result when it is a valid,
// positive duration, or "" (keep the template's) after logging why not.
func (c *compiled) duration(e *env) string {
	if c.durationExpr == nil {
		return ""
	}
	res, err := expr.Run(c.durationExpr, e)
	if err != nil {
		c.log.Warnf("duration_expr failed, keeping the profile duration: %v", err)
		return ""
	}
	var s string
	switch v := res.(type) {
	case string:
		s = v
	case time.Duration:
		s = v.String()
	default:
		c.log.Warnf("duration_expr returned %T (%v), not a duration string; keeping the profile duration", res, res)
		return ""
	}
	d, err := models.ParseDuration(s)
	if err != nil {
		c.log.Warnf("duration_expr returned %q, which is not a duration; keeping the profile duration", s)
		return ""
	}
	if d <= 0 {
		c.log.Warnf("duration_expr returned %q, which is not positive; keeping the profile duration", s)
		return ""
	}
	if _, err := models.Expiry(e.now(), d); err != nil {
		c.log.Warnf("duration_expr returned %q: %v; keeping the profile duration", s, err)
		return ""
	}
	return s
}
