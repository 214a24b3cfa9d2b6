package profiles

import (
	_ "embed"
	"fmt"
)

// DefaultTOML is the default profiles file shipped with Rampart; packaging
// installs it as profiles.toml.
//
//go:embed default_profiles.toml
var DefaultTOML []byte

// Default returns the Set built from DefaultTOML. The embedded file is
// checked by the tests, so a failure here is a build defect and panics.
func Default() *Set {
	ps, err := Parse(DefaultTOML, "default_profiles.toml")
	if err != nil {
		panic(fmt.Sprintf("profiles: embedded defaults: %v", err))
	}
	s, err := NewSet(ps)
	if err != nil {
		panic(fmt.Sprintf("profiles: embedded defaults: %v", err))
	}
	return s
}
