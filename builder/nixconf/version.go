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

// SupportsPortURI reports whether `ssh-ng://user@host:port` works.
func (v NixVersion) SupportsPortURI() bool { return v.PortURIWhyNot() == "" }

// PortURIWhyNot says why this Nix cannot use `ssh-ng://user@localhost:port`,
// or "" when it can. Nix 2.31 added the port (NixOS/nix#7044), but 2.31.0–
// 2.31.2 compare only the host with "localhost" and then skip ssh and run
// nix-daemon --stdio on the Mac itself (src/libstore/ssh.cc, fakeSSH; fixed by
// comparing the whole authority in NixOS/nix 7ec1427fc3, in 2.31.3 and
// 2.32.0). Lix numbers itself 2.9x but lacks the port.
func (v NixVersion) PortURIWhyNot() string {
	switch {
	case v.Flavor == "lix":
		return "Lix has no port in ssh-ng URIs"
	case v.Major > 2 || v.Major == 2 && v.Minor > 31 || v.Major == 2 && v.Minor == 31 && v.Patch >= 3:
		return ""
	case v.Major == 2 && v.Minor == 31:
		return "Nix 2.31.0–2.31.2 run a port URI to localhost on this Mac instead of the builder (fixed in 2.31.3)"
	}
	return "port URIs need Nix ≥ 2.31.3"
}
