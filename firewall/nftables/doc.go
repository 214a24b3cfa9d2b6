// Package nftables enforces bans with nftables over netlink: per family one
// table, one interval set with timeouts, and one base chain per hook whose
// single rule drops (or rejects) sources found in the set. It implements
// firewall.Backend.
//
// It never runs nft and never touches objects it did not create: its rules
// carry a tag in their UserData, a second Ensure or a restart after a crash
// adopts them instead of appending duplicates, and Flush removes a table
// only when nothing else lives in it. In set-only mode it manages just the
// set, inside a table and chains the administrator owns.
//
// Elements are kept in a small model in memory so that Apply is O(delta)
// and never reads the set back: the kernel refuses overlapping intervals,
// so the model cuts overlapping bans (a /24 and a /32 inside it) into
// disjoint segments. Element messages are written directly to a netlink
// socket of their own, in few large transactions, using "destroy" for
// deletes so that an element already gone is not an error.
//
// What the kernel (Linux 6.18) was measured to do, and what follows:
//   - An interval set costs O(set size) per committed transaction, so
//     transactions are as large as the send buffer allows (tens of MB).
//   - An element added again keeps its place and takes the new timeout, so
//     refreshing a ban never opens a gap.
//   - Dumping a set is quadratic, so nothing reads a set back; Replace on a
//     non-empty set flushes and reloads it in one atomic transaction.
//   - Within a transaction an interval's start must precede its end.
package nftables
