package main

import "github.com/rampart-ips/rampart/internal/manpage"

// page is what crowdsec(1) says beside the options, which come from the
// flag set itself.
var page = manpage.Page{
	Name:     "crowdsec",
	Short:    "CrowdSec-compatible log-processing agent and local API (Rampart)",
	Synopsis: "[-c file] [-t] [-no-api | -no-cs] [-dsn source -type type [-label key:value]...]",
	Description: `crowdsec reads log sources (files, journald, syslog), parses their lines and runs the detection scenarios of a hub-format rules folder on them. An attack that overflows a scenario becomes an alert, and the profiles turn alerts into decisions (bans) in the local API (LAPI), which serves them to bouncers such as crowdsec-firewall-bouncer(1). The agent and the LAPI run in one process unless -no-api or -no-cs is given, or the configuration disables one: [api.server] enable = false makes an agent-only host, which reports to the LAPI its credentials name (see cscli-lapi-register(1)); [crowdsec_service] enable = false makes a LAPI-only host, for agents on other hosts.

With -dsn, crowdsec replays one source once, in time-machine mode (timestamps are read from the lines), delivers the alerts and exits.

The configuration is a TOML file with upstream CrowdSec's structure and key names; log sources are TOML files in the acquisition directory. Use -t to check both, and the rules, without starting anything.`,
	Sections: []manpage.Section{
		{Title: "FILES", Text: `/etc/crowdsec/config.toml: the daemon's configuration.

/etc/crowdsec/acquis.d/*.toml: log sources.

/etc/crowdsec/profiles.toml: how alerts become decisions.

/etc/crowdsec/hub/: Rampart's rules (collections, parsers, scenarios), a link to /usr/share/crowdsec/hub.

/var/lib/crowdsec/data/: the SQLite database, the alert queue and the sources' positions.`},
		{Title: "EXIT STATUS", Text: `0 when stopped by SIGTERM or SIGINT, or when a replay or a check succeeded; 1 with a message on standard error otherwise.`},
	},
	SeeAlso: []string{"cscli(1)", "crowdsec-firewall-bouncer(1)", "systemctl(1)"},
}
