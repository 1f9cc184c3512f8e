package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wrapix/wrapix-builder/builder/agent"
	"github.com/wrapix/wrapix-builder/builder/atomicfile"
	"github.com/wrapix/wrapix-builder/builder/doctor"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/lifeline"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/safepath"
	"github.com/wrapix/wrapix-builder/builder/setup"
)

func setupCmd(e *env) *cobra.Command {
	var dryRun, undo bool
	var root, uri, lifelinePath, containerIP string
	forUID := keys.AnyOwner
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Let root's nix-daemon use the builder (privileged; --dry-run, --undo)",
		Long: `Install what the Mac's root nix-daemon needs to use the builder: root's copy of the client
key (/etc/nix, 0600), a known-hosts file with the pinned host key, an ssh_config drop-in
"Host wrapix-builder", the builders entry in /etc/nix/machines (unless nix-darwin manages
Nix's config: then use ` + "`wrapix-builder config`" + `), and the VPN route fix when needed.
Runs through sudo when not root. Idempotent. --dry-run prints the plan; --undo reverses
exactly what setup did.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			uid, err := invokingUID(forUID)
			if err != nil {
				return err
			}
			caller := uid // the user root acts for (sudo, pkexec, --for-uid); -1: root itself
			// Started by the app's administrator prompt: go on only while the
			// app waits for us, and stop when it quits (issue 17 point 8).
			// The socket must be the user's own (root's, for a root shell);
			// sudo never passes one, pkexec (the Linux app) does (issue 16).
			if lifelinePath != "" {
				if _, from, ok := callerUID(); ok && from == "SUDO_UID" { // pkexec is the Linux app's prompt
					return problem.Newf(problem.Usage, "leave out "+lifeline.Flag+": only the app's administrator prompt passes it", "%s under sudo (SUDO_UID is set)", lifeline.Flag)
				}
				owner := uid
				if owner < 0 {
					owner = os.Getuid()
				}
				held, err := lifeline.Hold(ctx, lifelinePath, owner)
				if err != nil {
					return problem.Wrap(problem.Setup, err, "setup did not start: nothing was changed", "choose Run setup… in the app again")
				}
				ctx = held
			}
			done := make(chan struct{})
			defer close(done)
			go endOnSignal(ctx, done, e.stderr)
			// Root writes through --root and trusts the journal there: only
			// a tree nobody but root can change (issue 16).
			if os.Geteuid() == 0 && root != "/" {
				if err := setup.CheckTree(root); err != nil {
					return err
				}
			}
			if err := e.resolveLayout(); err != nil {
				return err
			}
			ks, err := keys.LoadOwned(e.layout, uid)
			if err != nil && !undo {
				return err
			}
			afterKeysLoaded(e.layout)
			if os.Geteuid() == 0 {
				if uid == keys.AnyOwner && ks != nil {
					uid = ks.UID // a root shell without sudo: the keys' owner
				}
				if err := userDirs(e.layout, uid); err != nil {
					return err
				}
				e.configOwner = &uid
			}
			b, err := e.builder(true)
			if err != nil {
				return err
			}
			// A dotted quad only: net.ParseIP's To4 also takes ::ffff:a.b.c.d,
			// which `route -n get` would read as IPv6 (issue 16).
			if a, err := netip.ParseAddr(containerIP); containerIP != "" && (err != nil || !a.Is4()) {
				return problem.Newf(problem.Usage, "leave it out: setup asks the runtime", "--container-ip %q is not an IPv4 address", containerIP)
			}
			if !dryRun && root == "/" && os.Geteuid() != 0 {
				// As yourself, before sudo: the image (and keys) a build's
				// on-demand start needs and never builds (issue 17 point 4).
				if !undo && goruntime.GOOS == "darwin" {
					if err := b.Prepare(ctx); err != nil {
						return err
					}
				}
				// Root cannot ask the user's runtime: the container's IP
				// (its subnet's bridge, for the route fix) goes along.
				if goruntime.GOOS == "darwin" && b.CLI != nil {
					if c, err := b.CLI.Get(ctx, lifecycle.ContainerName); err == nil && c != nil && c.Running() {
						containerIP = c.IP
					}
				}
				return e.reexecWithSudo(ctx, b.Layout.DataDir, b.Layout.ConfigDir, undo, uri, containerIP)
			}
			var probe setup.RouteProber
			if goruntime.GOOS == "darwin" && root == "/" {
				probe = darwinRouteProbe(containerIP)
			}
			envr, err := setup.Observe(root, goruntime.GOOS, probe)
			if err != nil {
				fix := ""
				if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
					fix = "run it as root: sudo wrapix-builder setup --dry-run" // only a dry run gets here without sudo
				}
				return problem.Wrap(problem.Setup, err, "cannot inspect the system", fix)
			}
			run := runner(e, root)
			if undo {
				if err := setup.Undo(envr, run); err != nil {
					return err
				}
				if err := e.loginAgent(b, root, uid, true, false, run); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "setup undone: every file setup wrote or changed is as it was before")
				return nil
			}
			// The login agent runs this program at every login (macOS): a path
			// macOS removes later is refused before anything is written.
			if self, err := os.Executable(); err == nil && goruntime.GOOS == "darwin" {
				if err := agent.CheckProgram(self); err != nil {
					return problem.Newf(problem.Setup, agent.ProgramFix, "%v", err)
				}
			}
			form, err := uriForm(ctx, uri)
			if err != nil {
				return err
			}
			// Root's copy is made from the bytes keys.LoadOwned checked and
			// parsed (the file is never opened again, so it cannot be swapped in
			// between), encoded again: no user text reaches root's file.
			rootKey, err := ks.Client.RootCopy()
			if err != nil {
				return problem.Wrap(problem.Keys, err, "cannot re-encode SSH private key "+ks.Client.PrivatePath, "`wrapix-builder keys rotate`")
			}
			plan, err := setup.Compute(envr, b.Params(ks, form), rootKey)
			if err != nil {
				return err
			}
			// Without a desktop session the agent cannot be loaded (setup
			// over ssh): say so before writing anything (issue 17 point 7).
			if err := e.agentSession(b, root, uid, run); err != nil {
				if !dryRun {
					return err
				}
				fmt.Fprintf(e.stderr, "note: setup would stop here: %v\n", err)
			}
			if dryRun {
				if caller >= 0 && os.Geteuid() == 0 {
					plan.HideUnreadable(envr, caller)
				}
				fmt.Fprint(e.stdout, plan.Render(true))
				return e.loginAgent(b, root, uid, false, true, run)
			}
			if err := setup.Apply(envr, plan, run); err != nil {
				return err
			}
			fmt.Fprint(e.stdout, plan.Render(false))
			if err := e.loginAgent(b, root, uid, false, false, run); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, "setup done; `wrapix-builder setup --undo` reverses it")
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan, change nothing")
	cmd.Flags().BoolVar(&undo, "undo", false, "reverse what setup did")
	cmd.Flags().StringVar(&root, "root", "/", "apply to this directory instead of / (for testing)")
	cmd.Flags().StringVar(&uri, "uri", nixconf.FormAlias, "builders URI form: alias (every Nix) or port (Nix ≥ 2.31.3)")
	// The app's administrator prompt (osascript) runs us as root with no
	// SUDO_UID: it names its user, so root acts for that user (the keys must
	// be theirs, the login agent is theirs), not for whoever owns the data
	// directory the app's environment points at.
	cmd.Flags().IntVar(&forUID, "for-uid", keys.AnyOwner, "as root: the user setup acts for (default: sudo's SUDO_UID)")
	_ = cmd.Flags().MarkHidden("for-uid")
	cmd.Flags().StringVar(&lifelinePath, strings.TrimPrefix(lifeline.Flag, "--"), "", "the app's lifeline socket (the administrator prompt's setup)")
	_ = cmd.Flags().MarkHidden(strings.TrimPrefix(lifeline.Flag, "--"))
	cmd.Flags().StringVar(&containerIP, "container-ip", "", "the builder container's IPv4 address (passed through sudo)")
	_ = cmd.Flags().MarkHidden("container-ip")
	cmd.MarkFlagsMutuallyExclusive("dry-run", "undo")
	return cmd
}

// rootCopyCmd installs root's copy of the user's client key, for the
// nix-darwin module's activation (packaging/nix/module.nix), with setup's
// checks: the data directory is the user's (safepath), the key files are
// the user's regular files, no links, at most 16 KiB (keys.LoadOwned), and
// what is written is the parsed key encoded again (issue 16 point 6). It
// writes only root's key path (under a tree only root can change, for
// tests), and under sudo only for sudo's own user: root must not be made to
// overwrite another file, nor to copy someone else's key (issue 16).
func rootCopyCmd(e *env) *cobra.Command {
	var out string
	uid := -1
	cmd := &cobra.Command{
		Use:    "root-copy",
		Short:  "Install root's copy of the client key (for the nix-darwin module's activation)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if uid < 0 || out == "" {
				return problem.New(problem.Usage, "--for-uid and --out are required", "pass the user's uid and root's key path")
			}
			if _, err := invokingUID(uid); err != nil {
				return err
			}
			tree, ok := strings.CutSuffix(filepath.Clean(out), nixconf.RootKeyPath)
			if !ok || !filepath.IsAbs(out) {
				return problem.Newf(problem.Usage, "pass --out "+nixconf.RootKeyPath, "--out %s is not root's key path %s", out, nixconf.RootKeyPath)
			}
			if tree != "" {
				if err := setup.CheckTree(tree); err != nil {
					return err
				}
			}
			if err := e.resolveLayout(); err != nil {
				return err
			}
			if err := safepath.Check(e.layout.DataDir, false, uid, 0); err != nil {
				return problem.Newf(problem.Setup, fmt.Sprintf("the data directory must belong to uid %d, and nobody else may write to it", uid),
					"%s is not the own directory of uid %d: %v", e.layout.DataDir, uid, err)
			}
			ks, err := keys.LoadOwned(e.layout, uid)
			if err != nil {
				return err
			}
			data, err := ks.Client.RootCopy()
			if err != nil {
				return problem.Wrap(problem.Keys, err, "cannot re-encode SSH private key "+ks.Client.PrivatePath, "`wrapix-builder keys rotate`")
			}
			if err := atomicfile.Write(out, data, 0o600); err != nil {
				return problem.Wrap(problem.Setup, err, "cannot write "+out, "run it as root")
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&uid, "for-uid", -1, "the user whose key it is")
	cmd.Flags().StringVar(&out, "out", "", "root's copy to write ("+nixconf.RootKeyPath+")")
	return cmd
}

// callerUID is the user root acts for when started by sudo (SUDO_UID) or
// pkexec (PKEXEC_UID), and the variable that named them; ok is false when
// we are not root or neither is set (a root shell, the app's administrator
// prompt, nix-darwin's activation).
func callerUID() (uid int, from string, ok bool) {
	if os.Geteuid() != 0 {
		return 0, "", false
	}
	for _, v := range []string{"SUDO_UID", "PKEXEC_UID"} {
		if uid, err := strconv.Atoi(os.Getenv(v)); err == nil && uid >= 0 {
			return uid, v, true
		}
	}
	return 0, "", false
}

// rootForCaller refuses, as root on behalf of a sudo or pkexec caller, every
// command but setup (and root-copy, which checks its user itself): the
// others read the caller's config.toml and run the container CLI it names,
// which must never run as root (issue 16). A sudoers rule for wrapix-builder
// can so only ever reach setup.
func rootForCaller(cmd *cobra.Command) error {
	uid, from, ok := callerUID()
	if !ok {
		return nil
	}
	switch cmd.CommandPath() {
	case "wrapix-builder setup", "wrapix-builder keys root-copy", "wrapix-builder help", "wrapix-builder":
		return nil
	}
	return problem.Newf(problem.Usage, "run it as yourself, without sudo (only `sudo wrapix-builder setup` runs as root)",
		"`%s` does not run as root for a user (%s=%d)", cmd.CommandPath(), from, uid)
}

// endOnSignal ends setup when SIGINT or SIGTERM (which cancel ctx) finds it
// waiting on something that does not watch ctx: it gets a moment to return
// by itself, then the process exits. Setup saves its journal before every
// write, so what was done up to then stays undoable (issue 16).
func endOnSignal(ctx context.Context, done <-chan struct{}, stderr io.Writer) {
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		fmt.Fprintln(stderr, "wrapix-builder: setup interrupted by a signal or by the app that started it quitting (fix: run it again to finish, or `wrapix-builder setup --undo` to reverse what it did)")
		os.Exit(problem.ExitCodeOf(problem.Setup))
	}
}

// afterKeysLoaded lets a test act between the key check and the rest of
// setup (to swap the key file for a link, as an attacker would).
var afterKeysLoaded = func(paths.Layout) {}

// invokingUID is the user setup acts for: our own uid when not root; as
// root, the one --for-uid names (the app's administrator prompt), sudo's
// SUDO_UID, pkexec's PKEXEC_UID; for a root shell with none of them
// keys.AnyOwner (whoever owns the key directory). Under sudo, --for-uid may
// only repeat SUDO_UID: sudo's user must not act for someone else (issue 16).
func invokingUID(forUID int) (int, error) {
	if os.Geteuid() != 0 {
		return os.Getuid(), nil
	}
	if uid, from, ok := callerUID(); ok {
		if forUID >= 0 && forUID != uid {
			return 0, problem.Newf(problem.Usage, "leave out --for-uid: setup acts for the user who ran sudo",
				"--for-uid %d differs from %s %d", forUID, from, uid)
		}
		return uid, nil
	}
	if forUID >= 0 {
		return forUID, nil
	}
	return keys.AnyOwner, nil
}

// userDirs checks, as root, that the data and config directories are the
// user's own: root copies the key from one, and the login agent it installs
// for the user runs with both (the config names the container CLI the agent
// runs). So every directory on their paths, and every link followed, must be
// the user's or root's and writable by nobody else.
func userDirs(l paths.Layout, uid int) error {
	if uid == keys.AnyOwner {
		return nil // nobody named and no keys (--undo): nothing is read from them
	}
	for _, d := range []struct{ flag, dir string }{{"--data-dir", l.DataDir}, {"--config-dir", l.ConfigDir}} {
		if err := safepath.Check(d.dir, true, uid, 0); err != nil {
			return problem.Newf(problem.Setup, fmt.Sprintf("use directories that belong to uid %d and that nobody else may write to (%s)", uid, d.flag),
				"%s is not the own directory of uid %d, the user setup acts for: %v", d.dir, uid, err)
		}
	}
	return nil
}

// loginAgent installs (or with undo removes) the user's LaunchAgent that
// runs `wrapix-builder serve` (docs/on-demand.md). It is for the invoking
// user (SUDO_UID under sudo), whose container runtime it drives. macOS only:
// on Linux nothing installs serve.
func (e *env) loginAgent(b *lifecycle.Builder, root string, uid int, undo, dryRun bool, run setup.Runner) error {
	if goruntime.GOOS != "darwin" {
		return nil
	}
	u, err := invokingUser(root, b.Layout.KeysDir(), uid)
	if err != nil {
		if undo || dryRun {
			return nil
		}
		fmt.Fprintf(e.stderr, "note: no login agent installed (%v): run setup through sudo from your own account, or run `wrapix-builder serve` yourself\n", err)
		return nil
	}
	path := agent.Path(u.Home)
	if dryRun {
		fmt.Fprintf(e.stdout, "and as you: write %s (a login agent running `wrapix-builder serve`, which starts the builder when Nix connects) and load it\n", path)
		return nil
	}
	if undo {
		if err := agent.Uninstall(u, agent.Runner(run)); err != nil {
			return problem.Wrap(problem.Setup, err, "cannot remove the login agent "+path, "remove it yourself: `launchctl bootout gui/$(id -u)/"+agent.Label+"; rm "+path+"`")
		}
		return nil
	}
	self, err := agentProgram(u)
	if err != nil {
		return err
	}
	spec := agent.Spec{Program: self, DataDir: b.Layout.DataDir, ConfigDir: b.Layout.ConfigDir}
	if err := agent.Install(u, spec, agent.Runner(run)); errors.Is(err, agent.ErrNixDarwinAgent) {
		fmt.Fprintf(e.stderr, "note: no login agent installed: %v\n", err)
		return nil
	} else if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot install the login agent "+path, "run `wrapix-builder serve` yourself, and report this")
	}
	fmt.Fprintf(e.stdout, "login agent %s runs `wrapix-builder serve` (starts the builder when Nix connects)\n", path)
	return nil
}

// agentSession checks that the login agent can be loaded for the user
// (macOS; a user setup cannot name gets a note from loginAgent instead).
func (e *env) agentSession(b *lifecycle.Builder, root string, uid int, run setup.Runner) error {
	if goruntime.GOOS != "darwin" {
		return nil
	}
	u, err := invokingUser(root, b.Layout.KeysDir(), uid)
	if err != nil {
		return nil
	}
	if _, err := agentProgram(u); err != nil {
		return err
	}
	if err := agent.CheckSession(u, agent.Runner(run)); err != nil {
		return problem.Newf(problem.Setup, agent.SessionFix, "%v; nothing was changed", err)
	}
	return nil
}

// agentProgram is the path of this program the login agent runs: one that
// outlives an upgrade (a Nix profile's link, not the store path).
func agentProgram(u agent.User) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", problem.Wrap(problem.Setup, err, "cannot find this program for the login agent", "")
	}
	p, err := agent.StableProgram(self, u)
	if err != nil {
		return "", problem.Newf(problem.Setup, agent.StableProgramFix, "%v; nothing was changed", err)
	}
	return p, nil
}

// invokingUser is the user the login agent is for: invokingUID (sudo's,
// pkexec's, our own), or for root without either (macOS's administrator
// prompt) the owner of the key directory — never root itself. Under --root,
// the home is inside that tree.
func invokingUser(root, keysDir string, uid int) (agent.User, error) {
	if uid == keys.AnyOwner {
		fi, err := os.Stat(keysDir)
		if err != nil {
			return agent.User{}, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return agent.User{}, errors.New("cannot tell who owns " + keysDir)
		}
		uid = int(st.Uid)
	}
	if uid == 0 {
		return agent.User{}, errors.New("setup runs for root itself, not for a user")
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return agent.User{}, err
	}
	gid, _ := strconv.Atoi(u.Gid)
	return agent.User{Home: filepath.Join(root, u.HomeDir), UID: uid, GID: gid, Name: u.Username}, nil
}

// reexecWithSudo runs this same setup as root. The user's directories are
// passed explicitly: sudo resets $HOME and the XDG variables.
func (e *env) reexecWithSudo(ctx context.Context, dataDir, configDir string, undo bool, uri, containerIP string) error {
	self, err := os.Executable()
	if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot find this program to run it through sudo", "run `sudo wrapix-builder setup`")
	}
	args := []string{"--", self, "setup", "--data-dir", dataDir, "--config-dir", configDir, "--uri", uri}
	if undo {
		args = append(args, "--undo")
	}
	if containerIP != "" {
		args = append(args, "--container-ip", containerIP)
	}
	fmt.Fprintln(e.stderr, "setup changes files under /etc: running it through sudo…")
	cmd := exec.CommandContext(ctx, "sudo", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = e.stdin, e.stdout, e.stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return exitCode(ee.ExitCode())
		}
		return problem.Wrap(problem.Setup, err, "cannot run sudo", "run `sudo wrapix-builder setup` yourself")
	}
	return nil
}

func runner(e *env, root string) setup.Runner {
	return func(argv []string) error {
		if root != "/" {
			fmt.Fprintf(e.stderr, "skipped (--root %s): %s\n", root, strings.Join(argv, " "))
			return nil
		}
		// Root runs only programs named by an absolute, root-owned path
		// (toolpath.FindFixed, or fixed in the code): never a name looked
		// up on the caller's $PATH (issue 16).
		if !filepath.IsAbs(argv[0]) {
			return fmt.Errorf("refusing to run %q: not an absolute path", argv[0])
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}

// darwinRouteProbe: a VPN whose routes cover the container's subnet
// captures it. vmnet chooses the subnet and the bridge (bridge100,
// bridge103, …), so both come from ifconfig: the bridge holding the
// container's IP, or, when it is not known, each vmnet bridge in turn.
func darwinRouteProbe(containerIP string) setup.RouteProber {
	return func() (*setup.RouteFix, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "/sbin/ifconfig").Output()
		if err != nil {
			return nil, nil // no interfaces to read: nothing a route fix could name
		}
		for _, br := range setup.ContainerBridges(setup.VMNetBridges(string(out)), containerIP) {
			probe := containerIP
			if probe == "" {
				probe = br.Addr
			}
			rt, err := exec.CommandContext(ctx, "/sbin/route", "-n", "get", probe).Output()
			if err == nil && strings.HasPrefix(doctor.RouteInterface(string(rt)), "utun") {
				return &setup.RouteFix{Subnet: br.Net.String(), Interface: br.Name}, nil
			}
		}
		return nil, nil
	}
}

// uriForm validates --uri against the host's Nix.
func uriForm(ctx context.Context, uri string) (string, error) {
	switch uri {
	case nixconf.FormAlias:
		return uri, nil
	case nixconf.FormPort:
		nv, err := lifecycle.HostNixVersion(ctx)
		if err != nil {
			return "", problem.Wrap(problem.Usage, err, "--uri port needs to know the Nix version (`nix --version` failed)", "use --uri alias")
		}
		if why := nv.PortURIWhyNot(); why != "" {
			return "", problem.Newf(problem.Usage, "use --uri alias (works with every Nix)",
				"--uri port needs Nix 2.31.3 or newer; this is %s %s: %s", nv.Flavor, nv.Raw, why)
		}
		return uri, nil
	}
	return "", problem.Newf(problem.Usage, "use --uri alias or --uri port", "unknown --uri %q", uri)
}
