package bouncer

import (
	"context"
	"fmt"
	"os/exec"

	log "github.com/sirupsen/logrus"

	"github.com/rampart-ips/rampart/firewall"
	"github.com/rampart-ips/rampart/firewall/iptables"
	"github.com/rampart-ips/rampart/firewall/nftables"
)

func nftConfig(c *Config) nftables.Config {
	fam := func(f NFTFamily) nftables.Family {
		return nftables.Family{Enabled: f.Enabled != nil && *f.Enabled, SetOnly: f.SetOnly, Table: f.Table, Set: f.Set,
			Chain: f.Chain, Priority: f.Priority}
	}
	return nftables.Config{IPv4: fam(c.Nftables.IPv4), IPv6: fam(c.Nftables.IPv6), Hooks: c.NftablesHooks,
		DenyAction: c.DenyAction, DenyLog: c.DenyLog, DenyLogPrefix: c.DenyLogPrefix}
}

func iptConfig(c *Config, mode string) iptables.Config {
	return iptables.Config{Mode: mode, IPv4: !c.DisableIPv4, IPv6: !c.DisableIPv6, SetV4: c.BlacklistsIPv4, SetV6: c.BlacklistsIPv6,
		Chains: c.IptablesChains, DenyAction: c.DenyAction, DenyLog: c.DenyLog, DenyLogPrefix: c.DenyLogPrefix, SetSize: c.IpsetSize}
}

// NewBackend builds the backend the configuration's mode names. It does not
// touch the firewall until a method is called.
func NewBackend(c *Config) (firewall.Backend, error) {
	switch c.Mode {
	case "nftables":
		return nftables.New(nftConfig(c))
	case "iptables", "ipset":
		return iptables.New(iptConfig(c, c.Mode))
	}
	return nil, fmt.Errorf("firewall '%s' is not supported", c.Mode)
}

// RemoveOtherModes deletes what the other modes would have created, so that
// changing mode in the TOML and restarting moves enforcement cleanly. Only
// Rampart's own objects (by name) are touched.
func RemoveOtherModes(ctx context.Context, c *Config) {
	var others []firewall.Backend
	switch c.Mode {
	case "nftables":
		if b, err := iptables.New(iptConfig(c, "iptables")); err == nil {
			others = append(others, b)
		}
	case "iptables", "ipset":
		cc := *c
		// set-only tables belong to the administrator: never delete them.
		if b, err := nftables.New(nftConfig(&cc)); err == nil {
			others = append(others, b)
		}
		if c.Mode == "ipset" {
			// ipset mode keeps the sets but must not leave iptables rules of ours.
			if b, err := iptables.New(iptConfig(c, "iptables")); err == nil {
				if r, ok := any(b).(interface{ FlushRules(context.Context) error }); ok {
					if err := r.FlushRules(ctx); err != nil {
						log.WithError(err).Debug("removing iptables rules of a previous mode")
					}
				}
				b.Close()
			}
		}
	}
	for _, b := range others {
		if err := b.Flush(ctx); err != nil {
			log.WithError(err).WithField("backend", b.Name()).Debug("removing another mode's objects")
		}
		b.Close()
	}
}

// FlushAll deletes everything Rampart created in every mode (-flush and
// package removal).
func FlushAll(ctx context.Context, c *Config) error {
	var errs []error
	makers := []func() (firewall.Backend, error){
		func() (firewall.Backend, error) { return nftables.New(nftConfig(c)) },
	}
	// Without the iptables program, iptables mode cannot have run here,
	// so it left nothing to remove (its ipsets only exist beside its rules).
	if _, err := exec.LookPath("iptables"); err == nil {
		makers = append(makers, func() (firewall.Backend, error) { return iptables.New(iptConfig(c, "iptables")) })
	} else {
		log.Debug("no iptables program: nothing of iptables mode to remove")
	}
	for _, mk := range makers {
		b, err := mk()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := b.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", b.Name(), err))
		}
		b.Close()
	}
	if len(errs) > 0 {
		return fmt.Errorf("flushing: %v", errs)
	}
	return nil
}
