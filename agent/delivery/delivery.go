// Package delivery sends the agent's alerts to a LAPI the way upstream's
// agent does: machine login (JWT, re-login before expiry and on 401,
// handled by apiclient), a heartbeat, and batched POST /v1/alerts
// (gzipped above 5 KiB by apiclient). Alerts first go to a bounded
// on-disk queue, so that neither a LAPI outage nor an agent restart loses
// them. It must never block the agent on the network, and never drop an
// alert except in the cases listed below, each logged and counted.
//
// # Durability
//
// Pusher.Push returns once the alerts are fsynced (or kept in memory, see
// below). Concurrent Pushes share
// fsyncs (group commit without a timer: the first caller syncs at once,
// those arriving meanwhile ride on the next sync), so a lone alert costs
// one fsync and reaches the delivery loop immediately.
//
// The queue is a directory of segment files (4 MiB, smaller for small
// bounds) of length-prefixed, CRC-32C-checked records, plus an "ack"
// cursor file replaced atomically (temp file, fsync, rename, directory
// fsync). A record torn by a crash is found at the next start, cut off
// and logged with its size; earlier records are intact. A segment goes
// when every record in it is delivered.
//
// # A disk that refuses writes
//
// Detection must not depend on the disk: an attacker who fills /var/log
// fills the queue's filesystem too. When a write fails (no space, quota,
// I/O error, read-only), the records that fit are kept (a batch is split,
// not refused whole) and the rest wait in memory, at most
// Config.MaxMemoryAlerts (default 10000) and Config.MaxQueueBytes of
// them (past either the OLDEST go, counted as dropped). The delivery loop sends them straight from memory once
// the disk's queue is empty, and while the LAPI is unreachable it moves
// them to disk as soon as the disk takes them again. Only alerts still in
// memory when the agent stops are lost (logged and counted). An episode is
// logged once when it begins and once when writes work again;
// rampart_delivery_queue_memory_alerts and
// rampart_delivery_persist_failures_total show it. A queue whose disk is
// full at start opens all the same.
//
// # Bounds
//
// At most Config.MaxQueueAlerts undelivered alerts (default 10000) and
// Config.MaxQueueBytes of segment files (default 64 MiB) are kept. Past
// either bound the OLDEST undelivered alerts are dropped, since the newest
// attacks matter most, with a warning giving the count and the
// rampart_delivery_alerts_total{result="dropped"} counter.
//
// A replay (Config.WaitForRoom) drops nothing to stay within them: it has
// no newer traffic to protect, so a Push that would overflow waits until
// the LAPI takes queued alerts. If the LAPI takes none for WaitForRoom the
// queue stalls (ErrStalled): that Push and every later one fail, and the
// alerts they carried are counted as refused in Stats, so that the replay
// can say how many it did not deliver. It also posts only full batches
// (Config.FullBatches) until its input ends: the alerts are queued as
// before, only their POST waits.
//
// # Duplicates
//
// An alert leaves the queue only after the LAPI acknowledged it (201), and
// the cursor is written right after that answer. Delivery is therefore
// at-least-once: a crash between the LAPI's 201 and the cursor's fsync (a
// window of one fsync) sends those alerts again at the next start, as
// does a response lost to a timeout or a broken connection, to the same
// LAPI or, with several (apiclient's failover), the next one. Every queued
// alert carries a UUID (set by Push when empty): Rampart's LAPI recognises
// a second copy by it and answers with the stored alert, so a fleet on one
// database stores it once; upstream's stores the copy.
//
// # Alerts the LAPI refuses
//
// An unreachable or overloaded LAPI (network errors, 401/403 after a new
// login, 404, 408, 429, 502-504) keeps the batch queued; retries back off
// from Config.RetryMin to RetryMax, and the outage is logged once, with
// its end. A batch refused for its content (400, 413, 422, or 500
// "validation failure list", which is how LAPIs report schema errors) is
// split in halves until the bad alert is alone; that alert is dropped with
// an error log. Any other 5xx may be the server's or the alert's fault: an
// alert failing alone three times is moved behind the rest of the queue,
// and dropped only if it fails three times again after the LAPI accepted
// other alerts in between. A LAPI failing on everything thus drops
// nothing.
package delivery
