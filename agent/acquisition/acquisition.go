// Package acquisition reads log lines for the agent: files (globs, tail
// from the end at a first start and from the saved positions after that,
// rotation, inotify with a polling fallback), journald
// (journalctl --follow -o json with matches and a saved cursor), a syslog
// server (UDP/TCP, RFC 3164/5424) and one-shot replays of a DSN
// (file:///path.log, journalctl://...). Sources are configured in TOML
// files under /etc/crowdsec/acquis.d; each line leaves as an event.Line
// carrying its source's labels (type = "syslog", ...). A source that reads
// nothing for its idle_warning period says so in the log and in metrics.
// It never interprets a line: parsing is the parsers' business, and a
// line's time is when it was read.
package acquisition

import (
	"context"

	"github.com/rampart-ips/rampart/agent/event"
)

// Source is one configured log source.
type Source interface {
	// Name identifies the source in logs and metrics, e.g.
	// "file:/var/log/auth.log" or "journalctl:_SYSTEMD_UNIT=ssh.service".
	Name() string
	// Run sends lines to out until ctx ends (live sources) or the input is
	// exhausted (replays: Run then returns nil). It returns an error only
	// when the source cannot work at all; transient trouble (a file that
	// vanished, journalctl restarting) is logged and retried.
	Run(ctx context.Context, out chan<- event.Line) error
}

// ReplayBatch is the most lines a BatchSource hands over at once; each
// goes to a parse worker as it comes. Half the agent's batch: the lines a
// replay holds between reading and pouring are a number of batches, and
// with 256 its peak heap (so RSS) was a few MB higher than with
// line-by-line sends, for no CPU saved.
const ReplayBatch = 128

// BatchSource is a Source that can also hand its lines over in batches of
// at most ReplayBatch, each the receiver's: the agent then pays one
// channel operation per batch instead of one per line. Replays of whole
// files are, since they read far faster than the agent parses.
type BatchSource interface {
	Source
	// RunBatches is Run, with the lines sent in batches.
	RunBatches(ctx context.Context, out chan<- []event.Line) error
}
