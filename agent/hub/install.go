package hub

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Installer installs hub items into a configuration folder as upstream's
// cscli does, a symlink to the hub folder's file, but under
// <ConfigDir>/<kind>[/<stage>]/<author>/<file> so that two authors' items
// of one file name (rampart/sshd, crowdsecurity/sshd) never collide. A
// package upgrade of the hub folder thus upgrades what is installed.
type Installer struct {
	Hub       *Hub
	ConfigDir string // e.g. /etc/crowdsec
	// Collections are the configuration's crowdsec_service.collections:
	// enabled without files, they count as installed.
	Collections []string
	// Force overwrites tainted files (install, upgrade).
	Force bool
}

// Enabled is what the configuration enables (Hub.Enabled).
func (in *Installer) Enabled() *Enabled {
	return in.Hub.Enabled(in.ConfigDir, in.Collections)
}

// dest is where a new item goes once installed.
func (in *Installer) dest(i Info) string {
	base := filepath.Base(i.Path)
	author, _, ok := strings.Cut(i.Name, "/")
	if !ok {
		author = ""
	}
	if i.Stage != "" {
		return filepath.Join(in.ConfigDir, i.Kind, i.Stage, author, base)
	}
	return filepath.Join(in.ConfigDir, i.Kind, author, base)
}

// Install installs an item and, for a collection, every item it lists
// (recursively). An item already installed is rewritten with the index's
// version, except a tainted one unless Force (it is reported, and kept).
// It returns what it installed.
func (in *Installer) Install(kind, name string) ([]string, error) {
	en := in.Enabled()
	seen := map[string]bool{}
	var done []string
	var walk func(kind, name string) error
	walk = func(kind, name string) error {
		key := kind + ":" + name
		if seen[key] || name == "" {
			return nil
		}
		seen[key] = true
		i, ok := in.Hub.Item(kind, name)
		if !ok {
			return fmt.Errorf("%s %q is not in the hub", kind, name)
		}
		cur, installed := en.Get(kind, name)
		switch {
		case installed && cur.ByConfig != "":
			done = append(done, kind+"/"+name+" (already enabled by "+cur.ByConfig+")")
			return nil // and so are the items it lists
		case installed && cur.Tainted && !in.Force:
			done = append(done, kind+"/"+name+" (tainted, kept: --force overwrites it)")
		case installed && cur.Local:
			return fmt.Errorf("%s %s: %s is a local file of that name; remove it first", kind, name, cur.Path)
		default:
			dst := in.dest(i)
			if installed {
				dst = cur.Path
			}
			if err := in.link(i, dst); err != nil {
				return err
			}
			done = append(done, kind+"/"+name)
		}
		for _, k := range []string{"parsers", "scenarios", "postoverflows", "collections", "contexts"} {
			for _, dep := range i.Deps[k] {
				if _, ok := in.Hub.Item(k, dep); !ok {
					continue // not in this hub folder (e.g. appsec items, built-in contexts)
				}
				if err := walk(k, dep); err != nil {
					return err
				}
			}
		}
		return nil
	}
	err := walk(kind, name)
	return done, err
}

// link makes dst a symlink to the hub's file of i, replacing what is
// there (a copy or an older link) in one rename.
func (in *Installer) link(i Info, dst string) error {
	if _, err := os.Stat(i.Path); err != nil {
		return fmt.Errorf("installing %s: %w", i.Name, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("installing %s: %w", i.Name, err)
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".new")
	_ = os.Remove(tmp)
	if err := os.Symlink(i.Path, tmp); err != nil {
		return fmt.Errorf("installing %s: %w", i.Name, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("installing %s: %w", i.Name, err)
	}
	return nil
}

// dataFiles lists the data files an item declares (data: dest_file).
func dataFiles(item []byte) ([]string, error) {
	var out []string
	dec := yaml.NewDecoder(bytes.NewReader(item))
	for {
		var doc struct {
			Data []struct {
				DestFile string `yaml:"dest_file"`
			} `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("reading data references: %w", err)
		}
		for _, d := range doc.Data {
			if d.DestFile != "" {
				out = append(out, d.DestFile)
			}
		}
	}
}

// Remove deletes an installed item's file and, for a collection, as
// upstream's cscli does, the files of the items it lists (recursively)
// that no collection still enabled lists: a scenario two collections
// share stays while one of them does. Tainted and local dependencies are
// kept (reported in the returned list) unless Force. An item the
// configuration's collections list enables has no file to delete: the
// error says where to change it. It returns what it removed.
func (in *Installer) Remove(kind, name string) ([]string, error) {
	st, ok := in.Enabled().Get(kind, name)
	if !ok {
		if _, known := in.Hub.Item(kind, name); !known {
			return nil, fmt.Errorf("%s %q is not in the hub and not installed", kind, name)
		}
		return nil, fmt.Errorf("%s %q is not installed", kind, name)
	}
	if st.ByConfig != "" {
		return nil, fmt.Errorf("%s %s is enabled by %s in the configuration file, not by a file: remove it (or its collection) from there", kind, name, st.ByConfig)
	}
	if err := os.Remove(st.Path); err != nil {
		return nil, fmt.Errorf("removing %s: %w", name, err)
	}
	done := []string{kind + "/" + name}
	if kind != "collections" {
		return done, nil
	}
	i, ok := in.Hub.Item(kind, name)
	if !ok {
		return done, nil
	}
	for _, k := range []string{"parsers", "scenarios", "postoverflows", "collections", "contexts"} {
		for _, dep := range i.Deps[k] {
			en := in.Enabled()
			cur, installed := en.Get(k, dep)
			if !installed || cur.ByConfig != "" || in.listedByEnabled(en, k, dep) {
				continue
			}
			if (cur.Tainted || cur.Local) && !in.Force {
				done = append(done, k+"/"+dep+" ("+cur.Status()+", kept: --force removes it)")
				continue
			}
			more, err := in.Remove(k, dep)
			done = append(done, more...)
			if err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// listedByEnabled reports whether an enabled collection lists kind/name.
func (in *Installer) listedByEnabled(en *Enabled, kind, name string) bool {
	for _, c := range en.Of("collections") {
		i, ok := in.Hub.Item("collections", c.Name)
		if !ok {
			continue
		}
		for _, d := range i.Deps[kind] {
			if d == name {
				return true
			}
		}
	}
	return false
}

// Installed reports whether an item is enabled and whether it is tainted.
func (in *Installer) Installed(kind, name string) (installed, tainted bool) {
	st, ok := in.Enabled().Get(kind, name)
	return ok, ok && st.Tainted
}

// Change is one item Upgrade handled.
type Change struct {
	Kind, Name, From, To string
	// Skipped says why the item was left as it is ("" when upgraded).
	Skipped string
}

// Upgrade brings every enabled hub item that is not the index's current
// version to it, tainted ones only with Force, and installs what an
// upgraded collection now lists. A hub file in use waits in the pending
// folder since `hub update` (Import) and is moved into place here, which
// upgrades the symlinks to it and the items the configuration's
// collections enable; a copy (placed by hand) is rewritten.
//
// With names, only those items of kind are upgraded (cscli KIND upgrade
// NAME...); one that is not enabled is an error.
func (in *Installer) Upgrade(kind string, names ...string) ([]Change, error) {
	var out []Change
	en := in.Enabled()
	only := map[string]bool{}
	for _, n := range names {
		if _, ok := en.Get(kind, n); !ok {
			return nil, fmt.Errorf("%s %s is not installed", kind, n)
		}
		only[kind+":"+n] = true
	}
	for _, st := range en.Items {
		if len(only) > 0 && !only[st.Kind+":"+st.Name] {
			continue
		}
		if st.Local || (st.UpToDate() && !in.Force) {
			continue
		}
		i, ok := in.Hub.Item(st.Kind, st.Name)
		if !ok {
			continue
		}
		from := st.Version
		if st.Tainted {
			from = "tainted"
		}
		c := Change{Kind: st.Kind, Name: st.Name, From: from, To: i.Version}
		if st.Tainted && !in.Force {
			c.Skipped = "tainted (" + st.Note + "): --force overwrites it"
			out = append(out, c)
			continue
		}
		if err := in.Hub.applyPending(i); err != nil {
			return out, err
		}
		switch {
		case st.Kind == "collections" && st.ByConfig == "":
			if _, err := in.Install(st.Kind, st.Name); err != nil {
				return out, err
			}
		case !st.Linked:
			if err := copyFile(i.Path, st.Path); err != nil {
				return out, fmt.Errorf("upgrading %s: %w", st.Name, err)
			}
		}
		if data, err := os.ReadFile(i.Path); err == nil {
			now := State{Kind: st.Kind, Name: st.Name, Latest: i.Version}
			if in.Hub.versionOf(&now, data); !now.UpToDate() {
				c.Skipped = "the hub folder has no file of version " + i.Version + ": run 'cscli hub update' again"
				out = append(out, c)
				continue
			}
		}
		if st.UpToDate() {
			continue // forced over a current item: nothing to report
		}
		out = append(out, c)
	}
	return out, nil
}
