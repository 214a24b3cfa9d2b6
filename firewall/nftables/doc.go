// Package nftables enforces bans with nftables over netlink: per family one
// table, two sets with timeouts, and one base chain per hook. Single
// addresses (/32, /128), the bulk of any blocklist, go to a hash set named
// Set (crowdsec_blocklist, where an administrator looks for a ban), ranges
// to an interval set named Set+"_ranges"; each chain holds two rules, in
// this order:
//
//	ip saddr @crowdsec_blocklist counter drop
//	ip saddr @crowdsec_blocklist_ranges counter drop
//
// (or log and reject). It implements firewall.Backend. Older versions kept
// ranges in Set and addresses in Set+"_ips"; Ensure adopts that layout and
// Replace moves it to this one without a gap (see layout).
//
// It never runs nft and never touches objects it did not create: its rules
// carry a tag in their UserData, a second Ensure or a restart after a crash
// adopts them instead of appending duplicates (an older version's rules
// are rebuilt in place), and Flush removes a table only
// when nothing else lives in it. In set-only mode it manages just the two
// sets, inside a table and chains the administrator owns, whose rules must
// match both sets.
//
// Hosts never enter the interval set, so a host inside a banned range is in
// both sets and the kernel never sees them overlap; deleting one leaves the
// other enforced. Only ranges among themselves overlap (a /16 and a /24
// inside it): a small model in memory cuts them into disjoint segments so
// that Apply is O(delta) and never reads a set back. Of the host set the
// backend keeps only a sorted list of addresses and expiries (8 bytes per
// IPv4 address), for an exact count in Stats. Element messages are written
// directly to a netlink socket of their own, using "destroy" for deletes so
// that an element already gone is not an error.
//
// What the kernel (Linux 6.18) was measured to do, and what follows:
//   - An interval set costs O(set size) per committed transaction (1M /32
//     took 3.6-5 s to load, a 1k+1k delta on it 220-260 ms), which is why
//     hosts, the bulk of any blocklist, live in the hash set: 1M load in
//     about 0.9 s, a 1k+1k delta in about 2-4 ms. All range changes of a
//     call share one transaction.
//   - The hash set loads fastest in transactions of 64 KiB to 2 MiB; 32 MiB
//     ones were twice as slow. Small transactions also keep the batch
//     buffer small.
//   - An element added again (either set) keeps its place and takes the
//     new timeout, so refreshing a ban never opens a gap.
//   - Dumping a set is quadratic, so nothing reads a set back; Replace on a
//     non-empty set flushes and reloads both sets in one atomic
//     transaction.
//   - Within a transaction an interval's start must precede its end.
package nftables
