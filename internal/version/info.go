package version

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// HubFormatMin and HubFormatMax bound the "format" versions of parsers and
// scenarios the agent loads (internal/hubformat refuses the others).
const (
	HubFormatMin = "1.0"
	HubFormatMax = "3.0"
)

// Constraints are the hub format versions the agent understands, in
// upstream's `crowdsec -version` words, so hub tooling can compare.
var constraints = [][2]string{
	{"Constraint_parser", ">= " + HubFormatMin + ", <= " + HubFormatMax},
	{"Constraint_scenario", ">= " + HubFormatMin + ", <= " + HubFormatMax},
	{"Constraint_api", "v1"},
	{"Constraint_acquis", ">= 1.0, < 2.0"},
}

// Info is what `crowdsec -version` and `cscli version` print.
type Info struct {
	Name       string            `json:"name"`
	Version    string            `json:"version"`
	Commit     string            `json:"commit,omitempty"`
	CommitDate string            `json:"commit_date,omitempty"`
	GoVersion  string            `json:"go_version"`
	Platform   string            `json:"platform"`
	UserAgent  string            `json:"user_agent"`
	Constraint map[string]string `json:"constraints"`
	// Paths are the files and folders the program uses (config, data,
	// hub...), in the order Rows prints them; set by the caller.
	Paths []Path `json:"paths,omitempty"`
}

// Path is one file or folder a program uses.
type Path struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Get describes the running binary, name being its program name.
func Get(name string) Info {
	in := Info{Name: name, Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH,
		UserAgent: UserAgent(name), Constraint: map[string]string{}}
	for _, c := range constraints {
		in.Constraint[c[0]] = c[1]
	}
	// The Go toolchain stamps the commit when building from a checkout.
	if bi, ok := debug.ReadBuildInfo(); ok {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.time":
				in.CommitDate = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && in.Commit != "" {
			in.Commit += "-dirty"
		}
	}
	return in
}

// Write prints the information as upstream does, one "Key: value" per
// line, then the paths.
func (in Info) Write(w io.Writer) error {
	rows := [][2]string{{"version", in.Version + " (Rampart)"}}
	if in.Commit != "" {
		rows = append(rows, [2]string{"Commit", in.Commit})
	}
	if in.CommitDate != "" {
		rows = append(rows, [2]string{"CommitDate", in.CommitDate})
	}
	rows = append(rows, [2]string{"GoVersion", in.GoVersion}, [2]string{"Platform", in.Platform}, [2]string{"User-Agent", in.UserAgent})
	if in.Name != "crowdsec-firewall-bouncer" {
		rows = append(rows, constraints...)
	}
	for _, p := range in.Paths {
		rows = append(rows, [2]string{p.Name, p.Value})
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(w, "%s: %s\n", r[0], r[1]); err != nil {
			return err
		}
	}
	return nil
}
