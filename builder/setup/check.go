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
	StateStale   = "stale"   // present, but for another host key, port or settings
	StateIgnored = "ignored" // present, but a `builders` setting makes Nix read elsewhere
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
	var foundIn []string // the machines files with our entry, or "" for a builders line
	for _, f := range []string{nixconf.MachinesPath, nixconf.ModuleMachinesPath, "/etc/nix/nix.conf", "/etc/nix/nix.custom.conf"} {
		data, err := os.ReadFile(e.abs(f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			where := f
			if v, ok := strings.CutPrefix(line, "builders ="); ok {
				line, where = v, ""
			}
			for _, entry := range append(builderEntries(line), "") {
				switch {
				case entry == want, pinnedBySSH(entry):
					s.NixConfig = StateOK
					foundIn = append(foundIn, where)
				case s.NixConfig != StateOK && strings.Contains(entry, "@"+nixconf.Alias):
					s.NixConfig = StateStale
					details = append(details, filepath.Clean(f)+" has a wrapix-builder entry for another host key or settings")
				}
			}
		}
	}
	// Our entry counts only where Nix looks: a `builders` setting replaces
	// the default @/etc/nix/machines.
	if value, where := buildersSetting(e); s.NixConfig == StateOK {
		if where == "" {
			// Nix's default; a module's line file left behind is not read.
			value, where = "@"+nixconf.MachinesPath, "Nix's default builders"
		}
		entries := builderEntries(value)
		reached, hidden := false, ""
		for _, f := range foundIn {
			switch {
			case f == "":
				reached = reached || slices.ContainsFunc(entries, func(x string) bool { return x == want || pinnedBySSH(x) })
			case slices.Contains(entries, "@"+f):
				reached = true
			default:
				hidden = f
			}
		}
		if !reached {
			s.NixConfig = StateIgnored
			if hidden == "" {
				hidden = nixconf.MachinesPath
			}
			details = append(details, fmt.Sprintf("%s: `builders = %s` makes Nix ignore %s: add @%s to that line (entries are separated by ';')", where, value, hidden, hidden))
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

// buildersSetting is the `builders` value Nix reads from root's nix.conf:
// includes are read in place (relative to the including file; `!include`
// may be missing) and the last setting wins (src/libutil/config.cc
// applyConfigFile). where is "file:line" of that setting, "" when Nix keeps
// its default (@/etc/nix/machines).
func buildersSetting(e Env) (value, where string) {
	var read func(path string, depth int)
	read = func(path string, depth int) {
		data, err := os.ReadFile(e.abs(path))
		if err != nil || depth > 8 {
			return
		}
		for i, line := range strings.Split(string(data), "\n") {
			if j := strings.IndexByte(line, '#'); j >= 0 {
				line = line[:j]
			}
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && (f[0] == "include" || f[0] == "!include"):
				inc := f[1]
				if !filepath.IsAbs(inc) {
					inc = filepath.Join(filepath.Dir(path), inc)
				}
				read(inc, depth+1)
			case len(f) >= 2 && f[0] == "builders" && f[1] == "=":
				_, v, _ := strings.Cut(line, "=")
				value, where = strings.TrimSpace(v), fmt.Sprintf("%s:%d", path, i+1)
			}
		}
	}
	read("/etc/nix/nix.conf", 0)
	return value, where
}

// builderEntries splits a builders value as Nix does (machines.cc: on
// newlines and ';', trimmed).
func builderEntries(v string) []string {
	var out []string
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == '\n' || r == ';' }) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
