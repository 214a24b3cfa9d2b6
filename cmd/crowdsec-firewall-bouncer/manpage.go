package main

import "github.com/rampart-ips/rampart/internal/manpage"

// page is what crowdsec-firewall-bouncer(1) says beside the options, which
// come from the flag set itself.
var page = manpage.Page{
	Name:     "crowdsec-firewall-bouncer",
	Short:    "keep nftables or iptables in step with a CrowdSec local API's decisions (Rampart)",
	Synopsis: "[-c file] [-t | -T | -flush] [-v]",
	Description: `crowdsec-firewall-bouncer pulls the decisions of a CrowdSec local API, such as the one crowdsec(1) serves, and drops the banned addresses' packets. In nftables mode it keeps its own tables, "ip crowdsec" and "ip6 crowdsec6"; in iptables mode, ipset sets and a CROWDSEC_CHAIN chain. It never touches rules it did not create, restores its objects if something flushes them, and keeps them across restarts.

It never bans loopback, link-local, multicast or the host's own addresses, nor the prefixes listed in never_ban.`,
	Sections: []manpage.Section{
		{Title: "FILES", Text: `/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.toml: the configuration, with the bouncer's API key (mode 0600).`},
		{Title: "EXIT STATUS", Text: `0 when stopped by SIGTERM or SIGINT, or when a check or a flush succeeded; 1 with a message on standard error otherwise.`},
	},
	SeeAlso: []string{"crowdsec(1)", "cscli(1)", "nft(8)", "iptables(8)", "ipset(8)"},
}
