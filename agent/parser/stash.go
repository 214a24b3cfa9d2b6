package parser

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rampart-ips/rampart/agent/event"
	"github.com/rampart-ips/rampart/agent/exprhelpers"
)

// StashConfig is one item of a node's `stash:` section: when the node's
// grok matches (or it has none), the string `value` expression's result
// is stored under the string `key` expression's result in the named
// cache, which expressions read back with GetFromStash.
type StashConfig struct {
	Name     string `yaml:"name"`
	Key      string `yaml:"key"`
	Value    string `yaml:"value"`
	TTL      string `yaml:"ttl"`
	Size     int    `yaml:"size"`
	Strategy string `yaml:"strategy"`
}

// stash is a compiled StashConfig.
type stash struct {
	name       string
	key, value *program
	ttl        time.Duration
}

// compileStash compiles a node's stash items and declares their caches
// in the pipeline's helpers.
func (p *Pipeline) compileStash(in []StashConfig, m *yaml.Node) ([]stash, error) {
	var out []stash
	for i, c := range in {
		key := fmt.Sprintf("stash[%d]", i)
		line := itemLine(m, "stash", i)
		if strings.TrimSpace(c.Name) == "" || strings.TrimSpace(c.Key) == "" || strings.TrimSpace(c.Value) == "" {
			return nil, keyErr(key, line, errors.New("name, key and value are required"))
		}
		s := stash{name: c.Name}
		if c.TTL != "" {
			d, err := time.ParseDuration(c.TTL)
			if err != nil || d < 0 {
				return nil, keyErr(key+".ttl", line, fmt.Errorf("invalid duration %q", c.TTL))
			}
			s.ttl = d
		}
		if c.Size < 0 {
			return nil, keyErr(key+".size", line, fmt.Errorf("negative size %d", c.Size))
		}
		if p.helpers == nil {
			return nil, keyErr(key, line, errors.New("stash needs the expr helpers"))
		}
		if err := p.helpers.DeclareStash(exprhelpers.StashConfig{Name: c.Name, Size: c.Size, TTL: s.ttl, Strategy: c.Strategy}); err != nil {
			return nil, keyErr(key, line, err)
		}
		var err error
		if s.key, err = p.compileExpr(c.Key); err != nil {
			return nil, keyErr(key+".key", line, err)
		}
		if s.value, err = p.compileExpr(c.Value); err != nil {
			return nil, keyErr(key+".value", line, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// applyStash stores the node's stash items for evt. A key or value that
// fails or is not a string skips that item, as upstream.
func (p *Pipeline) applyStash(n *node, evt *event.Event, env *runEnv) {
	for _, s := range n.stash {
		k, err := env.run(s.key)
		ks, ok := k.(string)
		if err != nil || !ok {
			n.log.WithField("stash", s.name).Debug("stash key is not a string; skipped")
			continue
		}
		v, err := env.run(s.value)
		vs, ok := v.(string)
		if err != nil || !ok {
			n.log.WithField("stash", s.name).Debug("stash value is not a string; skipped")
			continue
		}
		ttl := s.ttl
		p.helpers.SetInStash(s.name, ks, vs, &ttl)
	}
}
