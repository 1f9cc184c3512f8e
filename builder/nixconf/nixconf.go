// Package nixconf renders everything that wires the Mac's Nix to the builder:
// the machines line, nix.conf lines, the nix-darwin snippet, the ssh_config
// drop-in and the known-hosts file. Pure functions of Params: the same input
// always gives the same bytes (golden-tested).
//
// Root installs these files system-wide, so nothing a user controls reaches
// them as free text: paths are fixed constants (root's key copy, our
// known-hosts file), the user's own key path is never written (it belongs in
// the user's own ssh config), and every other value is checked by Validate
// against a closed alphabet before anything is rendered.
package nixconf

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Fixed names shared by setup, config and doctor.
const (
	Alias          = "wrapix-builder"                                // ssh_config Host and HostKeyAlias
	RootKeyPath    = "/etc/nix/wrapix_builder_ed25519"               // root's copy of the client key (0600)
	KnownHostsPath = "/etc/nix/wrapix_builder_known_hosts"           // our own known-hosts file
	SSHConfigPath  = "/etc/ssh/ssh_config.d/100-wrapix-builder.conf" // read by /etc/ssh/ssh_config's Include
	MachinesPath   = "/etc/nix/machines"                             // the default `builders = @/etc/nix/machines`
	// The nix-darwin module's own machines line, written at activation with
	// the host key the CLI made (packaging/nix/lib.nix machinesFile).
	ModuleMachinesPath = "/etc/nix/wrapix_builder_machines"
)

// URI forms of the builders entry.
const (
	FormAlias = "alias" // ssh-ng://builder@wrapix-builder + ssh_config alias: every Nix version
	FormPort  = "port"  // ssh-ng://builder@localhost:PORT: Nix ≥ 2.31.3 only (PortURIWhyNot)
)

// Params are the values every output is made from.
type Params struct {
	User           string   // "builder"
	Port           int      // published loopback port
	Systems        []string // e.g. aarch64-linux
	MaxJobs        int
	SpeedFactor    int
	Features       []string // supported features
	HostKey        string   // host public key line: "ssh-ed25519 AAAA…"
	HostKeyBase64  string   // base64 of HostKey (machines field 8)
	UseSubstitutes bool
	Form           string // FormAlias (default) or FormPort
}

var (
	userRe    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	tokenRe   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$`) // a Nix system or feature name
	hostKeyRe = regexp.MustCompile(`^ssh-ed25519 [A-Za-z0-9+/]{68}$`)     // an ed25519 public key line, no comment
)

// Validate refuses any value that could not be written safely into a
// machines line, nix.conf, ssh_config or a Nix string: each field must come
// from a closed alphabet (no whitespace, comment, quote, ';', '%' or '$').
// The error names the field and its value (quoted) on one line.
func (p Params) Validate() error {
	bad := func(field, v, want string) error {
		return fmt.Errorf("%s %s cannot be written into the Nix and ssh configuration: %s", field, strconv.QuoteToASCII(v), want)
	}
	if !userRe.MatchString(p.User) {
		return bad("the SSH user", p.User, "use a plain login name")
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("port %d is out of range 1-65535", p.Port)
	}
	if len(p.Systems) == 0 {
		return fmt.Errorf("no systems: list at least one, e.g. aarch64-linux")
	}
	for _, s := range p.Systems {
		if !tokenRe.MatchString(s) {
			return bad("system", s, "letters, digits and _ . + - only")
		}
	}
	for _, f := range p.Features {
		if !tokenRe.MatchString(f) {
			return bad("supported feature", f, "letters, digits and _ . + - only")
		}
	}
	if p.MaxJobs < 1 || p.MaxJobs > 100000 || p.SpeedFactor < 1 || p.SpeedFactor > 100000 {
		return fmt.Errorf("max-jobs %d or speed-factor %d is out of range", p.MaxJobs, p.SpeedFactor)
	}
	if !hostKeyRe.MatchString(p.HostKey) {
		return bad("the host key", p.HostKey, "expected one \"ssh-ed25519 AAAA…\" line")
	}
	if p.HostKeyBase64 != base64.StdEncoding.EncodeToString([]byte(p.HostKey)) {
		return bad("the host key's base64", p.HostKeyBase64, "it must encode the host key line")
	}
	if p.Form != FormAlias && p.Form != FormPort && p.Form != "" {
		return bad("the URI form", p.Form, "use alias or port")
	}
	return nil
}

// URI is the store URI in the machines line.
func (p Params) URI() string {
	if p.Form == FormPort {
		return fmt.Sprintf("ssh-ng://%s@localhost:%d", p.User, p.Port)
	}
	// Always with a user: a bare ssh-ng://localhost would be the local store.
	return fmt.Sprintf("ssh-ng://%s@%s", p.User, Alias)
}

func dashIfEmpty(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

// MachinesLine is one line of /etc/nix/machines (8 fields).
func MachinesLine(p Params) string {
	return strings.Join([]string{
		p.URI(),
		strings.Join(p.Systems, ","),
		RootKeyPath,
		strconv.Itoa(p.MaxJobs),
		strconv.Itoa(p.SpeedFactor),
		dashIfEmpty(p.Features),
		"-",
		p.HostKeyBase64,
	}, " ") + "\n"
}

// NixConf is the nix.conf fragment for a Nix whose config is not managed by
// nix-darwin (the builders entry inline). It keeps Nix's default
// @/etc/nix/machines first: `builders` is one string (no extra-builders), so a
// value without it hides the user's other machines.
func NixConf(p Params) string {
	return "builders = @" + MachinesPath + ";" + strings.TrimSuffix(MachinesLine(p), "\n") + "\n" +
		"builders-use-substitutes = " + strconv.FormatBool(p.UseSubstitutes) + "\n"
}

// Determinate is the fragment for /etc/nix/nix.custom.conf: Determinate Nix
// owns nix.conf and reads user settings from there.
func Determinate(p Params) string {
	return "# /etc/nix/nix.custom.conf (Determinate Nix). Generated by `wrapix-builder config --format determinate`.\n" +
		"# Install the key and ssh settings first: sudo wrapix-builder setup\n" + NixConf(p)
}

// SSHConfig is the ssh_config drop-in that makes the alias work for root's
// nix-daemon: the pinned key lives in our own known-hosts file; HostKeyAlias
// makes ssh look it up under the alias, not 127.0.0.1. The drop-in is global,
// so it only matches names the builder alone uses: the alias, and for the
// port URI form localhost/127.0.0.1 on the builder's port, for root only
// (every other `ssh localhost` is untouched). Only root's fixed key path appears:
// the user's own key belongs in the user's own ~/.ssh/config.
func SSHConfig(p Params) string {
	var b strings.Builder
	b.WriteString("# Managed by wrapix-builder. Remove with: sudo wrapix-builder setup --undo\n")
	fmt.Fprintf(&b, "Host %s\n", Alias)
	sshConfigBody(&b, p)
	if p.Form == FormPort {
		// ssh evaluates `exec` only when the criteria before it matched
		// (readconf.c match_cfg_line skips it after a failed one), and %p is
		// the port given with -p, as Nix passes it for
		// ssh-ng://user@localhost:PORT. `exec` runs through the user's $SHELL
		// and ssh dies when that is not executable, so it runs for root only:
		// the block is for root's nix-daemon (the key it names is root's 0600
		// file), and Nix runs ssh with SHELL=/bin/sh (libstore/ssh.cc).
		fmt.Fprintf(&b, "Match host localhost,127.0.0.1 localuser root exec \"test %%p = %d\"\n", p.Port)
		sshConfigBody(&b, p)
	}
	return b.String()
}

func sshConfigBody(b *strings.Builder, p Params) {
	fmt.Fprintf(b, "  HostName 127.0.0.1\n")
	fmt.Fprintf(b, "  Port %d\n", p.Port)
	fmt.Fprintf(b, "  User %s\n", p.User)
	fmt.Fprintf(b, "  HostKeyAlias %s\n", Alias)
	fmt.Fprintf(b, "  IdentityFile %s\n", RootKeyPath)
	b.WriteString("  IdentitiesOnly yes\n")
	fmt.Fprintf(b, "  GlobalKnownHostsFile %s\n", KnownHostsPath)
	b.WriteString("  UserKnownHostsFile /dev/null\n") // a stale user entry must not shadow the pinned key
	b.WriteString("  StrictHostKeyChecking yes\n")
	b.WriteString("  PasswordAuthentication no\n")
	b.WriteString("  KbdInteractiveAuthentication no\n")
	// ConnectTimeout also bounds ssh's wait for the server's banner, which
	// comes only once `serve` has started a stopped builder: 6 min covers a
	// start (start-timeout's default is 5 min). A failed start closes the
	// connection at once, so this is no wait for a dead builder.
	b.WriteString("  ConnectTimeout 360\n")
	b.WriteString("  ServerAliveInterval 15\n")
	b.WriteString("  ServerAliveCountMax 3\n")
}

// KnownHosts is our known-hosts file: the host key under the alias (and the
// loopback names with the port, for the port URI form).
func KnownHosts(p Params) string {
	return "# wrapix-builder host key, managed by wrapix-builder.\n" +
		Alias + " " + p.HostKey + "\n" +
		fmt.Sprintf("[127.0.0.1]:%d %s\n", p.Port, p.HostKey) +
		fmt.Sprintf("[localhost]:%d %s\n", p.Port, p.HostKey)
}

// NixDarwin is the nix-darwin module snippet for a permanent setup.
func NixDarwin(p Params) string {
	var b strings.Builder
	b.WriteString("# Wrapix Builder: nix-darwin configuration, generated by `wrapix-builder config`.\n")
	b.WriteString("# The client key itself is never put in the Nix store: install it once with\n")
	fmt.Fprintf(&b, "#   sudo wrapix-builder setup   (writes %s, mode 0600)\n", RootKeyPath)
	b.WriteString("{\n")
	b.WriteString("  nix.distributedBuilds = true;\n")
	b.WriteString("  nix.buildMachines = [\n    {\n")
	host := Alias
	if p.Form == FormPort {
		host = "localhost:" + strconv.Itoa(p.Port)
	}
	fmt.Fprintf(&b, "      hostName = %s;\n", nixString(host))
	b.WriteString("      protocol = \"ssh-ng\";\n")
	fmt.Fprintf(&b, "      sshUser = %s;\n", nixString(p.User))
	fmt.Fprintf(&b, "      sshKey = %s;\n", nixString(RootKeyPath))
	fmt.Fprintf(&b, "      systems = %s;\n", nixList(p.Systems))
	fmt.Fprintf(&b, "      maxJobs = %d;\n", p.MaxJobs)
	fmt.Fprintf(&b, "      speedFactor = %d;\n", p.SpeedFactor)
	fmt.Fprintf(&b, "      supportedFeatures = %s;\n", nixList(p.Features))
	fmt.Fprintf(&b, "      publicHostKey = %s;\n", nixString(p.HostKeyBase64))
	b.WriteString("    }\n  ];\n")
	fmt.Fprintf(&b, "  nix.settings.builders-use-substitutes = %t;\n", p.UseSubstitutes)
	fmt.Fprintf(&b, "  environment.etc.%s.text = %s;\n", nixString(strings.TrimPrefix(SSHConfigPath, "/etc/")), nixIndented(SSHConfig(p)))
	fmt.Fprintf(&b, "  environment.etc.%s.text = %s;\n", nixString(strings.TrimPrefix(KnownHostsPath, "/etc/")), nixIndented(KnownHosts(p)))
	b.WriteString("}\n")
	return b.String()
}

// nixString renders a Nix double-quoted string.
func nixString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "${", `\${`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func nixList(l []string) string {
	if len(l) == 0 {
		return "[ ]"
	}
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = nixString(s)
	}
	return "[ " + strings.Join(q, " ") + " ]"
}

// nixIndented renders a multi-line Nix ” string, indented for the snippet.
// Inside ” strings, ” and ${ are escaped as ”' and ”${.
func nixIndented(s string) string {
	r := strings.NewReplacer("''", "'''", "${", "''${")
	var b strings.Builder
	b.WriteString("''\n")
	for _, line := range strings.Split(strings.TrimSuffix(r.Replace(s), "\n"), "\n") {
		if line != "" {
			b.WriteString("    " + line)
		}
		b.WriteString("\n")
	}
	b.WriteString("  ''")
	return b.String()
}
