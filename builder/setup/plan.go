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
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
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
	Before  []byte      // the file as it is now (nil: absent), for --dry-run
	After   []byte      // the whole file as setup will leave it, for --dry-run
	Secret  bool        // never print the content (root's copy of the private key)
	Cmd     []string    // OpRun
	UndoCmd []string    // OpRun: how to reverse it (nil: nothing to reverse)
	Why     string
	// HiddenFrom: the file's existing lines are not shown, because the user
	// root acts for (named here) could not read them (HideUnreadable).
	HiddenFrom string
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
	Determinate bool // nix.conf includes nix.custom.conf (Determinate's installer): settings go there
	// DeterminateDaemon: Determinate Nix's daemon is installed. Determinate's
	// installer also installs upstream Nix, with nix.custom.conf but the
	// daemon org.nixos.nix-daemon.
	DeterminateDaemon bool
	ManagedLink       []string
	SSHInclude        bool // /etc/ssh/ssh_config includes ssh_config.d
	Route             *RouteFix
	Current           map[string][]byte // logical path → content of the files setup may write (absent, or root's key copy: no entry)
	// Systemctl (Linux): the root-owned systemctl in a fixed place that
	// reloads nix-daemon, never one on the caller's $PATH; "": none.
	Systemctl string
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
	e := Env{Root: root, GOOS: goos, Current: map[string][]byte{}}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return e, fmt.Errorf("root directory %s does not exist", root)
	}
	for _, p := range []string{"/etc/nix/nix.conf", nixconf.MachinesPath, nixconf.SSHConfigPath, nixconf.KnownHostsPath, nixconf.RootKeyPath, "/etc/nix/nix.custom.conf"} {
		// Root's key copy is never read: the plan shows it only by size, and
		// it is root's 0600 file, which a --dry-run as the user cannot open.
		if fi, err := os.Lstat(e.abs(p)); err == nil && fi.Mode().IsRegular() && p != nixconf.RootKeyPath {
			data, err := os.ReadFile(e.abs(p))
			if err != nil {
				return e, fmt.Errorf("cannot read %s: %w", e.abs(p), err)
			}
			e.Current[p] = data
		}
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
	if _, err := os.Stat(e.abs(determinateDaemonPlist)); err == nil {
		e.DeterminateDaemon = true
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
	if goos == "linux" {
		if f, err := toolpath.Systemctl.FindFixed(); err == nil {
			e.Systemctl = f.Path
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

// Compute decides the plan. clientKey is the private key for root's copy:
// the exact bytes that were parsed and checked, never read again. Values that
// cannot be written safely, and a damaged block in a shared file, are errors:
// nothing is planned.
func Compute(e Env, p nixconf.Params, clientKey []byte) (Plan, error) {
	var plan Plan
	if err := p.Validate(); err != nil {
		return plan, problem.Wrap(problem.Config, err, "refusing to write root's files", "fix the value in config.toml or the key files")
	}
	var damaged error
	add := func(op Op) {
		if (op.Kind == OpWriteFile || op.Kind == OpBlock) && e.isLink(op.Path) {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%s is a symlink (managed by nix-darwin or another tool): not written; use `wrapix-builder config`", op.Path))
			return
		}
		switch op.Kind {
		case OpWriteFile:
			op.Before, op.After = e.Current[op.Path], op.Content
		case OpBlock:
			op.Before = e.Current[op.Path]
			after, _, err := withBlock(e.abs(op.Path), op.Before, op.Content)
			if err != nil && damaged == nil {
				damaged = err
			}
			op.After = after
		}
		plan.Ops = append(plan.Ops, op)
	}
	add(Op{Kind: OpWriteFile, Path: nixconf.RootKeyPath, Content: clientKey, Mode: 0o600, Secret: true,
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
	if damaged != nil {
		return Plan{}, damaged
	}
	return plan, nil
}

// HideUnreadable marks, for a dry run as root on behalf of uid (sudo's
// caller), every file whose existing contents that user could not read
// themselves: root prints only what setup writes into it, never the rest (a
// 0600 nix.conf holds access tokens). Any doubt hides (issue 16).
func (p Plan) HideUnreadable(e Env, uid int) {
	name := "uid " + strconv.Itoa(uid)
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	for i, op := range p.Ops {
		if op.Before != nil && !readableBy(e.abs(op.Path), uid) {
			p.Ops[i].HiddenFrom = name
		}
	}
}

// readableBy tells whether uid could open path for reading: search
// permission on every directory above it and read permission on the file,
// by owner, group (primary and supplementary, from the user database) or
// other bits, as the kernel decides (ACLs aside: they can only be doubted).
func readableBy(path string, uid int) bool {
	var gids []string
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		gids, _ = u.GroupIds()
	}
	allowed := func(p string, bit os.FileMode) bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		perm := fi.Mode().Perm()
		switch {
		case int(st.Uid) == uid:
			return perm&(bit<<6) != 0
		case slices.Contains(gids, strconv.Itoa(int(st.Gid))):
			return perm&(bit<<3) != 0
		}
		return perm&bit != 0
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if !allowed(d, 0o1) {
			return false
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	return allowed(path, 0o4)
}

// determinateDaemonPlist is Determinate Nix's daemon (nix-installer
// src/action/common/configure_determinate_nixd_init_service/mod.rs).
const determinateDaemonPlist = "/Library/LaunchDaemons/systems.determinate.nix-daemon.plist"

func reloadCmd(e Env) []string {
	switch e.GOOS {
	case "darwin":
		label := "system/org.nixos.nix-daemon"
		if e.DeterminateDaemon {
			label = "system/systems.determinate.nix-daemon"
		}
		return []string{"/bin/launchctl", "kickstart", "-k", label}
	case "linux":
		if e.Systemctl == "" {
			return nil
		}
		return []string{e.Systemctl, "try-restart", "nix-daemon.service"}
	}
	return nil
}

// Render prints the plan: one line per operation, and with contents the
// exact bytes of every file (a full-context diff against what is there now;
// the private key only by size).
func (p Plan) Render(contents bool) string {
	var b strings.Builder
	for i, op := range p.Ops {
		switch op.Kind {
		case OpWriteFile:
			fmt.Fprintf(&b, "%d. write %s (mode %04o): %s\n", i+1, op.Path, op.Mode.Perm(), op.Why)
		case OpBlock:
			fmt.Fprintf(&b, "%d. put a wrapix-builder block in %s: %s\n", i+1, op.Path, op.Why)
		case OpRun:
			fmt.Fprintf(&b, "%d. run %s: %s\n", i+1, strings.Join(op.Cmd, " "), op.Why)
		}
		if !contents || op.Kind == OpRun {
			continue
		}
		switch {
		case op.HiddenFrom != "" && !op.Secret:
			fmt.Fprintf(&b, "   (existing contents not shown: not readable by %s)\n", op.HiddenFrom)
			shown := op.After
			if op.Kind == OpBlock {
				shown = []byte(blockBegin + string(op.Content) + blockEnd)
			}
			b.WriteString(diff(op.Path, nil, shown))
		case op.Secret:
			fmt.Fprintf(&b, "   (the client private key, %d bytes, not shown)\n", len(op.After))
		case bytes.Equal(op.Before, op.After) && op.Before != nil:
			fmt.Fprintf(&b, "   (unchanged, %d bytes)\n", len(op.After))
		default:
			b.WriteString(diff(op.Path, op.Before, op.After))
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

// diff is a unified diff with the whole file as context, so --dry-run shows
// every byte the file will hold. A line that is not plain printable text is
// shown quoted; a missing final newline is marked as diff(1) does.
func diff(path string, before, after []byte) string {
	a, b := splitLines(before), splitLines(after)
	// Longest common subsequence on lines; the files are small.
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	from := "--- " + path
	if before == nil {
		from = "--- /dev/null"
	}
	fmt.Fprintf(&out, "   %s\n   +++ %s\n   @@ -%d,%d +%d,%d @@\n", from, path, min(1, len(a)), len(a), min(1, len(b)), len(b))
	line := func(sign byte, l string) {
		text := strings.TrimSuffix(l, "\n")
		if !printable(text) {
			text = strconv.QuoteToASCII(text)
		}
		fmt.Fprintf(&out, "   %c%s\n", sign, text)
		if !strings.HasSuffix(l, "\n") {
			out.WriteString("   \\ No newline at end of file\n")
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			line(' ', a[i])
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			line('+', b[j])
			j++
		default:
			line('-', a[i])
			i++
		}
	}
	return out.String()
}

func splitLines(data []byte) []string {
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

func printable(s string) bool {
	for _, r := range s {
		if r != '\t' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
