package setup

import (
	"fmt"
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
	if fi, err := os.Stat(e.abs(nixconf.RootKeyPath)); err != nil {
		trust = worse(trust, StateMissing)
		details = append(details, nixconf.RootKeyPath+" is missing")
	} else if fi.Mode().Perm()&0o077 != 0 {
		trust = worse(trust, StateStale)
		details = append(details, fmt.Sprintf("%s has mode %04o: others can read root's private key (setup makes it 0600)", nixconf.RootKeyPath, fi.Mode().Perm()))
	}
	// Every user's Nix and ssh read these directories (a umask of 077 when they were made hides them).
	for _, d := range []string{"/etc/nix", "/etc/ssh/ssh_config.d"} {
		if fi, err := os.Stat(e.abs(d)); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			trust = worse(trust, StateStale)
			details = append(details, fmt.Sprintf("%s has mode %04o: other users' Nix and ssh cannot read it (chmod 755 %s)", d, fi.Mode().Perm(), d))
		}
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
	// The same entry without a public key field ("-"): nix-darwin's module
	// writes that when the key is pinned at activation; ssh then checks the
	// known-hosts file, which Trust above verifies.
	wantFields := strings.Fields(want)
	pinnedBySSH := func(line string) bool {
		f := strings.Fields(line)
		return len(f) == len(wantFields) && f[len(f)-1] == "-" && slices.Equal(f[:len(f)-1], wantFields[:len(wantFields)-1])
	}
	s.NixConfig = StateMissing
	for _, f := range []string{nixconf.MachinesPath, "/etc/nix/nix.conf", "/etc/nix/nix.custom.conf"} {
		data, err := os.ReadFile(e.abs(f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "builders ="))
			switch {
			case line == want, pinnedBySSH(line):
				s.NixConfig = StateOK
			case s.NixConfig != StateOK && strings.Contains(line, "@"+nixconf.Alias):
				s.NixConfig = StateStale
				details = append(details, filepath.Clean(f)+" has a wrapix-builder entry for another host key or settings")
			}
		}
	}
	if data, err := os.ReadFile(e.abs(nixconf.MachinesPath)); err == nil {
		if bad := MachinesMisread(string(data)); bad != "" {
			s.NixConfig = StateStale
			details = append(details, nixconf.MachinesPath+" has a line Nix cannot read ("+bad+"): an earlier setup's marker had a ';' (re-run setup) or the line was edited")
		}
	}
	if s.NixConfig == StateMissing {
		details = append(details, "no builders entry for wrapix-builder in "+nixconf.MachinesPath+" or nix.conf")
	}
	s.Detail = strings.Join(details, "; ")
	return s
}

// MachinesMisread reads a machines file the way Nix does (src/libstore/
// machines.cc: split on newlines and ';', then drop '#' comments and blank
// entries) and returns the first entry Nix would reject, "" when none: more
// than 8 fields, or a non-number where Nix wants max-jobs or speed-factor.
func MachinesMisread(data string) string {
	for _, entry := range strings.FieldsFunc(data, func(r rune) bool { return r == '\n' || r == ';' }) {
		if i := strings.IndexByte(entry, '#'); i >= 0 {
			entry = entry[:i]
		}
		f := strings.Fields(entry)
		if len(f) == 0 {
			continue
		}
		bad := len(f) > 8
		for _, col := range []int{3, 4} {
			if len(f) > col && f[col] != "" && f[col] != "-" {
				if _, err := strconv.ParseUint(f[col], 10, 32); err != nil {
					bad = true
				}
			}
		}
		if bad {
			return strconv.Quote(strings.TrimSpace(entry))
		}
	}
	return ""
}
