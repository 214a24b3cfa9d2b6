package cscli

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"
)

// renderTable writes a plain box table (upstream cscli draws similar ones
// with go-pretty). Cells are never coloured here: callers that want colour
// decide with (*CLI).colorEnabled and pass already-decorated text.
func renderTable(w io.Writer, header []string, rows [][]string) {
	ncol := len(header)
	for _, r := range rows {
		if len(r) > ncol {
			ncol = len(r)
		}
	}
	if ncol == 0 {
		return
	}
	widths := make([]int, ncol)
	measure := func(r []string) {
		for i, c := range r {
			if n := visibleLen(c); n > widths[i] {
				widths[i] = n
			}
		}
	}
	measure(header)
	for _, r := range rows {
		measure(r)
	}
	var b strings.Builder
	sep := func() {
		b.WriteByte('+')
		for _, n := range widths {
			b.WriteString(strings.Repeat("-", n+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}
	line := func(r []string) {
		b.WriteByte('|')
		for i := 0; i < ncol; i++ {
			c := ""
			if i < len(r) {
				c = r[i]
			}
			b.WriteByte(' ')
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-visibleLen(c)+1))
			b.WriteByte('|')
		}
		b.WriteByte('\n')
	}
	sep()
	if len(header) > 0 {
		line(header)
		sep()
	}
	for _, r := range rows {
		line(r)
	}
	sep()
	_, _ = io.WriteString(w, b.String())
}

// visibleLen is the display width of s ignoring ANSI colour sequences.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j + 1
			continue
		}
		_, sz := utf8.DecodeRuneInString(s[i:])
		i += sz
		n++
	}
	return n
}

// writeCSV writes header and rows as CSV.
func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if header != nil {
		if err := cw.Write(header); err != nil {
			return fmt.Errorf("writing csv: %w", err)
		}
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}

// printJSON writes v as indented JSON to cli.Out.
func (cli *CLI) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding json: %w", err)
	}
	b = append(b, '\n')
	if _, err := cli.Out.Write(b); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// colorEnabled reports whether output may be coloured: --color yes forces
// it, no disables it, auto colours only when stdout is a terminal.
func (cli *CLI) colorEnabled() bool {
	switch strings.ToLower(cli.Color) {
	case "yes", "true", "always":
		return true
	case "no", "false", "never":
		return false
	}
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	return isTerminal(cli.Out)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// red wraps s in a red ANSI sequence when colour is on.
func (cli *CLI) red(s string) string {
	if !cli.colorEnabled() {
		return s
	}
	return "\x1b[31m" + s + "\x1b[0m"
}
