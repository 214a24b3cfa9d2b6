// Package journallog gives log lines their journald priority when a
// binary runs under systemd with its log stream connected to the journal:
// each entry is prefixed with sd-daemon's "<N>" (sd-daemon(3)), so that
// `journalctl -p warning` shows warnings and errors while the logrus text
// stays as it is (fields readable, one entry per line). It never changes
// where logs go, and does nothing when the stream is not the journal's
// (a terminal, a file, a pipe).
package journallog

import (
	"io"
	"os"
	"strconv"
	"strings"

	log "github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Priority is the syslog priority journald stores for a logrus level.
func Priority(l log.Level) int {
	switch l {
	case log.PanicLevel, log.FatalLevel:
		return 2 // crit
	case log.ErrorLevel:
		return 3 // err
	case log.WarnLevel:
		return 4 // warning
	case log.InfoLevel:
		return 6 // info
	default:
		return 7 // debug, trace
	}
}

// IsJournal reports whether f is the stream systemd connected to the
// journal: JOURNAL_STREAM holds "device:inode" of that stream (of stderr
// when both stdout and stderr go to the journal), and a descriptor
// redirected elsewhere (`crowdsec ... 2>file` in a unit) no longer matches.
func IsJournal(f *os.File) bool {
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" || f == nil {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return matches(env, uint64(st.Dev), st.Ino)
}

// matches parses JOURNAL_STREAM's "dev:ino" (decimal) against a stat.
func matches(env string, dev, ino uint64) bool {
	d, i, ok := strings.Cut(env, ":")
	if !ok {
		return false
	}
	wantDev, err1 := strconv.ParseUint(d, 10, 64)
	wantIno, err2 := strconv.ParseUint(i, 10, 64)
	return err1 == nil && err2 == nil && wantDev == dev && wantIno == ino
}

// Formatter prefixes what Inner formats with the entry's "<N>". A
// multi-line entry keeps its priority on its first line only, so Inner
// should quote newlines (logrus' TextFormatter does without a terminal).
type Formatter struct {
	Inner log.Formatter
}

// Format implements log.Formatter.
func (f *Formatter) Format(e *log.Entry) ([]byte, error) {
	b, err := f.Inner.Format(e)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+3)
	out = append(out, '<', byte('0'+Priority(e.Level)), '>')
	return append(out, b...), nil
}

// Setup switches logger to journal priorities when out, where it writes,
// is the journal stream; it reports whether it did. A TextFormatter loses
// its timestamp there, since journald stamps every entry itself.
func Setup(logger *log.Logger, out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || !IsJournal(f) {
		return false
	}
	inner := logger.Formatter
	if _, done := inner.(*Formatter); done {
		return true
	}
	if tf, ok := inner.(*log.TextFormatter); ok {
		inner = &log.TextFormatter{DisableTimestamp: true, DisableQuote: tf.DisableQuote, FieldMap: tf.FieldMap}
	}
	logger.SetFormatter(&Formatter{Inner: inner})
	return true
}
