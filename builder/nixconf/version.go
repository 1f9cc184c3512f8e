package nixconf

import (
	"fmt"
	"regexp"
	"strconv"
)

// NixVersion is the host Nix, from `nix --version`.
type NixVersion struct {
	Major, Minor, Patch int
	Flavor              string // "nix", "determinate" or "lix"
	Raw                 string
}

// e.g. "nix (Nix) 2.8.0", "nix (Determinate Nix 3.6.2) 2.29.0", "nix (Lix, like Nix) 2.91.1"
var nixVersionRe = regexp.MustCompile(`^nix \(([^)]*)\) (\d+)\.(\d+)(?:\.(\d+))?`)

// ParseNixVersion reads `nix --version` output.
func ParseNixVersion(out string) (NixVersion, error) {
	m := nixVersionRe.FindStringSubmatch(out)
	if m == nil {
		return NixVersion{}, fmt.Errorf("unexpected `nix --version` output %q", out)
	}
	v := NixVersion{Flavor: "nix", Raw: m[2] + "." + m[3]}
	v.Major, _ = strconv.Atoi(m[2])
	v.Minor, _ = strconv.Atoi(m[3])
	if m[4] != "" {
		v.Patch, _ = strconv.Atoi(m[4])
		v.Raw += "." + m[4]
	}
	switch {
	case regexp.MustCompile(`(?i)determinate`).MatchString(m[1]):
		v.Flavor = "determinate"
	case regexp.MustCompile(`(?i)lix`).MatchString(m[1]):
		v.Flavor = "lix"
	}
	return v, nil
}

// SupportsPortURI reports whether `ssh-ng://user@host:port` works: Nix
// ≥ 2.31 (NixOS/nix#7044). Lix numbers itself 2.9x but lacks it.
func (v NixVersion) SupportsPortURI() bool {
	if v.Flavor == "lix" {
		return false
	}
	return v.Major > 2 || v.Major == 2 && v.Minor >= 31
}
