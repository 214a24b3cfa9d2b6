// Package cobraman writes the man pages of a cobra command tree (cscli's)
// with internal/manpage's formatting: one page per command. It is apart
// from manpage so that the flag-based binaries do not link cobra.
package cobraman

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rampart-ips/rampart/internal/manpage"
)

// Flag registers manpage.FlagName on cmd's persistent flags, hidden, and
// returns its value.
func Flag(cmd *cobra.Command) *string {
	var dir string
	cmd.PersistentFlags().StringVar(&dir, manpage.FlagName, "", "write the man pages into this directory and exit")
	_ = cmd.PersistentFlags().MarkHidden(manpage.FlagName)
	return &dir
}

// WritePages writes one page per available command of root's tree,
// named after its path (cscli-decisions-list.1), as git's pages are.
// Hidden and deprecated commands and "help" get none. seeAlso is added to
// the root's page.
func WritePages(dir string, root *cobra.Command, info manpage.Info, seeAlso []string) error {
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		if c != root && (!c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand()) {
			return nil
		}
		extra := []string(nil)
		if c == root {
			extra = seeAlso
		}
		if err := manpage.WriteFile(dir, pageName(c)+".1", func(w io.Writer) error { return renderPage(w, c, info, extra) }); err != nil {
			return err
		}
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

func pageName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

func renderPage(w io.Writer, c *cobra.Command, info manpage.Info, extraSeeAlso []string) error {
	r := &manpage.Doc{}
	name := pageName(c)
	r.Header(name, info)
	r.Section("NAME")
	r.Line(manpage.Escape(name) + ` \- ` + manpage.Escape(strings.TrimSuffix(c.Short, ".")))
	r.Section("SYNOPSIS")
	if c.Runnable() {
		r.Line(`\fB` + manpage.Escape(c.CommandPath()) + `\fR` + manpage.Escape(strings.TrimPrefix(c.UseLine(), c.CommandPath())))
	}
	if c.HasAvailableSubCommands() {
		if c.Runnable() {
			r.Line(".br")
		}
		r.Line(`\fB` + manpage.Escape(c.CommandPath()) + `\fR \fIcommand\fR [flags]`)
	}
	r.Section("DESCRIPTION")
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	r.Text(desc)
	if len(c.Aliases) > 0 {
		r.Line(".PP")
		r.Line(manpage.EscapeLine("Also called: " + strings.Join(c.Aliases, ", ") + "."))
	}
	if c.HasAvailableSubCommands() {
		r.Section("COMMANDS")
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			r.Line(".TP")
			r.Line(`\fB` + manpage.Escape(sub.Name()) + `\fR`)
			r.Line(manpage.EscapeLine(sub.Short) + ` (see \fB` + manpage.Escape(pageName(sub)) + `\fR(1))`)
		}
	}
	if opts := pflagOptions(c.NonInheritedFlags()); len(opts) > 0 {
		r.Section("OPTIONS")
		r.Options(opts)
	}
	if opts := pflagOptions(c.InheritedFlags()); len(opts) > 0 {
		r.Section("OPTIONS INHERITED FROM PARENT COMMANDS")
		r.Options(opts)
	}
	if c.Example != "" {
		r.Section("EXAMPLES")
		r.Verbatim(c.Example)
	}
	var see []string
	if c.HasParent() {
		see = append(see, pageName(c.Parent())+"(1)")
	}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			see = append(see, pageName(sub)+"(1)")
		}
	}
	r.SeeAlso(append(see, extraSeeAlso...))
	_, err := io.WriteString(w, r.String())
	return err
}

func pflagOptions(fs *pflag.FlagSet) []manpage.Option {
	var opts []manpage.Option
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		arg, usage := pflag.UnquoteUsage(f)
		o := manpage.Option{Names: "--" + f.Name, Arg: arg, Usage: usage}
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			o.Names = "-" + f.Shorthand + ", " + o.Names
		}
		if f.Value.Type() == "bool" {
			o.Arg = ""
		}
		if !manpage.IsZeroDefault(f.DefValue) && !(o.Arg == "" && f.DefValue == "true") {
			o.Default = f.DefValue
		}
		opts = append(opts, o)
	})
	return opts
}
