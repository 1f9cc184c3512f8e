package setup

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

// Check values.
const (
	StateOK      = "ok"
	StateMissing = "missing"
	StateStale   = "stale" // present, but for another host key, port or settings
)

// State is whether the Mac's root side trusts the current builder and Nix uses it.
type State struct {
	Trust     string // known hosts + ssh_config + root's key
	NixConfig string // a builders entry with our current line
	ManagedBy string // "nix-darwin" or "wrapix-builder"
	Detail    string // what is missing or stale, for doctor
}

// Check reads (never writes) the files setup or nix-darwin put in place. It
// follows symlinks, so nix-darwin's /etc/static links are read too.
func Check(root string, p nixconf.Params) State {
	e := Env{Root: root}
	s := State{ManagedBy: "wrapix-builder"}
	if target, err := os.Readlink(e.abs("/etc/nix/nix.conf")); err == nil && strings.Contains(target, "/etc/static/") {
		s.ManagedBy = "nix-darwin"
	}
	var details []string
	trust := StateOK
	worse := func(cur, next string) string {
		if cur == StateMissing || next == StateOK {
			return cur
		}
		return next
	}
	if _, err := os.Stat(e.abs(nixconf.RootKeyPath)); err != nil {
		trust = worse(trust, StateMissing)
		details = append(details, nixconf.RootKeyPath+" is missing")
	}
	checks := []struct {
		path  string
		needs []string // lines that must be present for the current key and port
	}{
		{nixconf.KnownHostsPath, []string{nixconf.Alias + " " + p.HostKey}},
		{nixconf.SSHConfigPath, []string{"Port " + strconv.Itoa(p.Port), "HostKeyAlias " + nixconf.Alias}},
	}
	for _, c := range checks {
		got, err := os.ReadFile(e.abs(c.path))
		if err != nil {
			trust = worse(trust, StateMissing)
			details = append(details, c.path+" is missing")
			continue
		}
		lines := strings.Split(string(got), "\n")
		for _, need := range c.needs {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.TrimSpace(l) == need }) {
				trust = worse(trust, StateStale)
				details = append(details, c.path+" is out of date (other host key or port)")
				break
			}
		}
	}
	s.Trust = trust

	want := strings.TrimSpace(nixconf.MachinesLine(p))
	s.NixConfig = StateMissing
	for _, f := range []string{nixconf.MachinesPath, "/etc/nix/nix.conf", "/etc/nix/nix.custom.conf"} {
		data, err := os.ReadFile(e.abs(f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "builders ="))
			switch {
			case line == want:
				s.NixConfig = StateOK
			case s.NixConfig != StateOK && strings.Contains(line, "@"+nixconf.Alias):
				s.NixConfig = StateStale
				details = append(details, filepath.Clean(f)+" has a wrapix-builder entry for another host key or settings")
			}
		}
	}
	if s.NixConfig == StateMissing {
		details = append(details, "no builders entry for wrapix-builder in "+nixconf.MachinesPath+" or nix.conf")
	}
	s.Detail = strings.Join(details, "; ")
	return s
}
