// Package setup is the privileged step: it computes a plan of operations
// first (observe → decide), prints it for --dry-run, applies it, and keeps a
// journal so --undo reverses it exactly. It never writes a file that is a
// symlink (nix-darwin manages those through /etc/static) and never clobbers
// what it did not write: shared files get a marked block, our own files are
// backed up in the journal before the first write.
package setup

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

// Op kinds.
const (
	OpWriteFile = "write-file" // replace a whole file we own
	OpBlock     = "block"      // put our marked block into a shared file
	OpRun       = "run"        // run a command (reload a daemon, add a route)
)

// Op is one privileged operation.
type Op struct {
	Kind    string
	Path    string      // logical path, e.g. /etc/nix/machines (the root prefix is added when applying)
	Content []byte      // file content or block body
	Mode    os.FileMode // for files
	Cmd     []string    // OpRun
	UndoCmd []string    // OpRun: how to reverse it (nil: nothing to reverse)
	Why     string
}

// Plan is the ordered list of operations plus what the user must do by hand.
type Plan struct {
	Ops   []Op
	Notes []string
}

// Env is what setup observed about the machine.
type Env struct {
	Root        string // "/" normally; a temporary tree in tests
	GOOS        string
	NixDarwin   bool // /etc/nix/nix.conf is managed by nix-darwin (a link into /etc/static)
	Determinate bool // Determinate Nix: settings go to nix.custom.conf
	ManagedLink []string
	SSHInclude  bool // /etc/ssh/ssh_config includes ssh_config.d
	Route       *RouteFix
}

// RouteFix is the VPN route repair: the container subnet is routed through a
// VPN tunnel instead of the vmnet bridge.
type RouteFix struct {
	Subnet    string // e.g. 192.168.64.0/24
	Interface string // e.g. bridge100
}

// RouteProber finds whether the container subnet needs a route fix. nil = no fix needed.
type RouteProber func() (*RouteFix, error)

func (e Env) abs(p string) string { return filepath.Join(e.Root, p) }

// Observe inspects the tree under root.
func Observe(root, goos string, probe RouteProber) (Env, error) {
	e := Env{Root: root, GOOS: goos}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return e, fmt.Errorf("root directory %s does not exist", root)
	}
	for _, p := range []string{"/etc/nix/nix.conf", nixconf.MachinesPath, nixconf.SSHConfigPath, nixconf.KnownHostsPath, nixconf.RootKeyPath, "/etc/nix/nix.custom.conf"} {
		if fi, err := os.Lstat(e.abs(p)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			e.ManagedLink = append(e.ManagedLink, p)
			if p == "/etc/nix/nix.conf" {
				if target, err := os.Readlink(e.abs(p)); err == nil && strings.Contains(target, "/etc/static/") {
					e.NixDarwin = true
				}
			}
		}
	}
	if _, err := os.Stat(e.abs("/etc/nix/nix.custom.conf")); err == nil {
		e.Determinate = true
	}
	if data, err := os.ReadFile(e.abs("/etc/nix/nix.conf")); err == nil && bytes.Contains(data, []byte("nix.custom.conf")) {
		e.Determinate = true // Determinate's nix.conf includes nix.custom.conf
	}
	if data, err := os.ReadFile(e.abs("/etc/ssh/ssh_config")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && strings.EqualFold(f[0], "Include") && strings.Contains(sc.Text(), "ssh_config.d") {
				e.SSHInclude = true
			}
		}
	}
	if probe != nil {
		fix, err := probe()
		if err != nil {
			return e, err
		}
		e.Route = fix
	}
	return e, nil
}

func (e Env) isLink(p string) bool {
	for _, l := range e.ManagedLink {
		if l == p {
			return true
		}
	}
	return false
}

// Compute decides the plan. clientKey is the private key for root's copy.
func Compute(e Env, p nixconf.Params, clientKey []byte) Plan {
	var plan Plan
	add := func(op Op) {
		if (op.Kind == OpWriteFile || op.Kind == OpBlock) && e.isLink(op.Path) {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%s is a symlink (managed by nix-darwin or another tool): not written; use `wrapix-builder config`", op.Path))
			return
		}
		plan.Ops = append(plan.Ops, op)
	}
	add(Op{Kind: OpWriteFile, Path: nixconf.RootKeyPath, Content: clientKey, Mode: 0o600,
		Why: "the client key for root's nix-daemon (root's ssh refuses a key in the Nix store)"})
	if e.NixDarwin {
		plan.Notes = append(plan.Notes,
			"nix-darwin manages /etc/nix: add the snippet from `wrapix-builder config` to your configuration and run darwin-rebuild switch (it provides the builders entry, ssh_config and known hosts)")
	} else {
		add(Op{Kind: OpWriteFile, Path: nixconf.KnownHostsPath, Content: []byte(nixconf.KnownHosts(p)), Mode: 0o644,
			Why: "the builder's pinned host key"})
		add(Op{Kind: OpWriteFile, Path: nixconf.SSHConfigPath, Content: []byte(nixconf.SSHConfig(p)), Mode: 0o644,
			Why: "ssh alias `wrapix-builder` with HostKeyAlias, key and timeouts, for root and the user"})
		if !e.SSHInclude {
			plan.Notes = append(plan.Notes, "/etc/ssh/ssh_config does not include ssh_config.d: add the line `Include /etc/ssh/ssh_config.d/*` at its top")
		}
		add(Op{Kind: OpBlock, Path: nixconf.MachinesPath, Content: []byte(nixconf.MachinesLine(p)), Mode: 0o644,
			Why: "the builders entry (read through the default `builders = @/etc/nix/machines`)"})
		confPath := "/etc/nix/nix.conf"
		if e.Determinate {
			confPath = "/etc/nix/nix.custom.conf"
		}
		add(Op{Kind: OpBlock, Path: confPath, Mode: 0o644,
			Content: []byte(fmt.Sprintf("builders-use-substitutes = %t\n", p.UseSubstitutes)),
			Why:     "let the builder fetch dependencies from binary caches itself"})
		if reload := reloadCmd(e); reload != nil {
			add(Op{Kind: OpRun, Cmd: reload, UndoCmd: reload, Why: "reload nix-daemon so it reads the new settings"})
		}
	}
	if e.Route != nil {
		add(Op{Kind: OpRun,
			Cmd:     []string{"/sbin/route", "-n", "add", "-net", e.Route.Subnet, "-interface", e.Route.Interface},
			UndoCmd: []string{"/sbin/route", "-n", "delete", "-net", e.Route.Subnet, "-interface", e.Route.Interface},
			Why:     "a VPN routes the container subnet into its tunnel; send it to the vmnet bridge " + e.Route.Interface})
	}
	return plan
}

func reloadCmd(e Env) []string {
	switch e.GOOS {
	case "darwin":
		label := "system/org.nixos.nix-daemon"
		if e.Determinate {
			label = "system/systems.determinate.nix-daemon"
		}
		return []string{"/bin/launchctl", "kickstart", "-k", label}
	case "linux":
		return []string{"systemctl", "try-restart", "nix-daemon.service"}
	}
	return nil
}

// Render prints the plan for --dry-run.
func (p Plan) Render() string {
	var b strings.Builder
	for i, op := range p.Ops {
		switch op.Kind {
		case OpWriteFile:
			fmt.Fprintf(&b, "%d. write %s (mode %04o): %s\n", i+1, op.Path, op.Mode.Perm(), op.Why)
		case OpBlock:
			fmt.Fprintf(&b, "%d. put a wrapix-builder block in %s: %s\n", i+1, op.Path, op.Why)
			for _, l := range strings.Split(strings.TrimSuffix(string(op.Content), "\n"), "\n") {
				fmt.Fprintf(&b, "     %s\n", l)
			}
		case OpRun:
			fmt.Fprintf(&b, "%d. run %s: %s\n", i+1, strings.Join(op.Cmd, " "), op.Why)
		}
	}
	if len(p.Ops) == 0 {
		b.WriteString("nothing to do\n")
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
