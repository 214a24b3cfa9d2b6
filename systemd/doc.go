// Package systemd holds Rampart's systemd units (crowdsec.service and
// crowdsec-firewall-bouncer.service) and, in its tests, the checks that
// keep them valid for systemd-analyze and consistent with the daemons:
// readiness, ordering, capabilities and the paths they write.
package systemd
