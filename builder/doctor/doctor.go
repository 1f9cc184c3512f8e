// Package doctor walks every link of the chain from the Mac's Nix to the
// builder's nix-daemon, and says for each failure exactly what to do.
package doctor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/lock"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/nixdaemon"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/builder/setup"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// Results of a check.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
	Skip = "skip" // not checked because an earlier link failed or it does not apply here
)

// Check is one link of the chain.
type Check struct {
	Name   string       `json:"name"`
	Result string       `json:"result"`
	Detail string       `json:"detail"`
	Fix    string       `json:"fix,omitempty"`
	Kind   problem.Kind `json:"-"`
}

// Options tune the run.
type Options struct {
	Root         string // "/" normally
	DaemonSocket string // the Mac's nix-daemon socket
}

// Run performs every check in order. b may carry a config that failed to load (cfgErr).
func Run(ctx context.Context, b *lifecycle.Builder, cfgErr error, opt Options) []Check {
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.DaemonSocket == "" {
		opt.DaemonSocket = "/nix/var/nix/daemon-socket/socket"
	}
	var out []Check
	add := func(c Check) { out = append(out, c) }
	fail := func(name string, err error, fallbackFix string) Check {
		c := Check{Name: name, Result: Fail, Detail: err.Error(), Fix: fallbackFix, Kind: problem.KindOf(err)}
		var p *problem.Error
		if errors.As(err, &p) {
			c.Detail = p.What
			if p.Err != nil {
				c.Detail += ": " + p.Err.Error()
			}
			if p.Fix != "" {
				c.Fix = p.Fix
			}
		}
		return c
	}
	skip := func(name, why string) { add(Check{Name: name, Result: Skip, Detail: why}) }

	if cfgErr != nil {
		add(fail("config", cfgErr, ""))
	} else {
		where := b.Config.File
		if where == "" {
			where = "defaults (no " + b.Layout.ConfigFile() + ")"
		}
		add(Check{Name: "config", Result: OK, Detail: where})
	}

	// The container runtime.
	v, err := b.CLI.Version(ctx)
	if err != nil {
		add(fail("container CLI", err, ""))
	} else {
		detail := "version " + v.String()
		if found, err := b.CLI.Resolve(); err == nil {
			detail += " at " + found.Path + " (" + found.Source + ")"
		}
		add(Check{Name: "container CLI", Result: OK, Detail: detail})
		add(checkSandbox(b, v))
		if b.WantsRosetta() {
			add(checkRosetta(b, v))
		}
	}
	runtimeOK := err == nil
	if runtimeOK {
		sys, err := b.CLI.SystemStatus(ctx)
		switch {
		case err != nil:
			add(fail("container system service", err, ""))
			runtimeOK = false
		case sys.State == runtime.SystemNotResponding:
			add(Check{Name: "container system service", Result: Fail, Detail: "registered with launchd but not answering", Fix: lifecycle.HungFix, Kind: problem.Runtime})
			runtimeOK = false
		case sys.State != runtime.SystemUp:
			add(Check{Name: "container system service", Result: Fail, Detail: "not running", Fix: "run `container system start` (or `wrapix-builder start`)", Kind: problem.Runtime})
			runtimeOK = false
		default:
			add(Check{Name: "container system service", Result: OK, Detail: "running"})
		}
		switch {
		case !runtimeOK:
			skip("Linux kernel", "container system not available")
		case !runtime.KernelInstalled(sys.AppRoot):
			add(Check{Name: "Linux kernel", Result: Fail, Detail: "no default kernel at " + runtime.KernelPath(sys.AppRoot) + " (an interrupted download?)",
				Fix: "run `wrapix-builder start` (it installs it) or `container system kernel set --recommended`", Kind: problem.Runtime})
		default:
			add(Check{Name: "Linux kernel", Result: OK, Detail: runtime.KernelPath(sys.AppRoot)})
		}
	} else {
		skip("container system service", "no usable container CLI")
		skip("Linux kernel", "no usable container CLI")
	}
	if runtimeOK {
		ok, err := b.CLI.ImageExists(ctx, b.Config.Image)
		archive, from := b.ImageArchive()
		switch {
		case err != nil:
			add(fail("builder image", err, ""))
		case !ok && archive != "":
			add(Check{Name: "builder image", Result: Warn, Detail: b.Config.Image + " is not loaded yet; start loads it from " + archive + " (" + from + ")"})
		case !ok:
			if nix, err := lifecycle.FindNix(); err == nil {
				add(Check{Name: "builder image", Result: Warn, Detail: b.Config.Image + " is not loaded yet; `wrapix-builder start` (or Start in the app) builds it with " + nix + " from " + b.Config.ImageFlake + "#builder-image; a build's on-demand start does not"})
			} else {
				add(Check{Name: "builder image", Result: Fail, Detail: b.Config.Image + " is not loaded, and there is no Nix to build it", Fix: "install Nix, or set image-archive in " + b.Layout.ConfigFile(), Kind: problem.Runtime})
			}
		default:
			add(Check{Name: "builder image", Result: OK, Detail: b.Config.Image})
		}
	} else {
		skip("builder image", "container system not available")
	}

	// Keys.
	ks, keyErr := keys.Load(b.Layout)
	if keyErr != nil {
		add(fail("SSH keys", keyErr, ""))
	} else {
		add(Check{Name: "SSH keys", Result: OK, Detail: "host " + ks.Host.Fingerprint() + ", client " + ks.Client.Fingerprint()})
	}

	// The container and its port.
	var c *runtime.Container
	if runtimeOK {
		c, err = b.CLI.Get(ctx, lifecycle.ContainerName)
		switch {
		case err != nil:
			add(fail("builder container", err, ""))
		case c == nil:
			add(Check{Name: "builder container", Result: Fail, Detail: "does not exist", Fix: "wrapix-builder start", Kind: problem.NotRunning})
		case !c.Running():
			add(Check{Name: "builder container", Result: Fail, Detail: "state " + c.State, Fix: "wrapix-builder start", Kind: problem.NotRunning})
		default:
			add(Check{Name: "builder container", Result: OK, Detail: "running, ip " + c.IP})
			add(checkContainerSettings(c))
			if b.WantsRosetta() && !c.Rosetta {
				add(Check{Name: "x86_64-linux on the builder", Result: Warn, Detail: lifecycle.NoRosettaWarning, Fix: lifecycle.RestartFix})
			}
		}
		if err == nil && !c.Running() {
			// start would refuse: the runtime itself lets two VMs attach one store.
			id, store, herr := b.StoreHeldBy(ctx)
			switch {
			case herr != nil || id == "":
			case id == lifecycle.ReclaimContainer:
				add(Check{Name: "store", Result: Warn, Detail: "`gc --compact` is copying the store into a fresh volume (the builder is stopped meanwhile)",
					Fix: "wait for it to finish; if it was killed, `wrapix-builder start` undoes it"})
			default:
				add(Check{Name: "store", Result: Fail, Detail: "the " + store + " is attached to the running container " + id,
					Fix: "stop it first: `container stop " + id + "`", Kind: problem.Conflict})
			}
		}
	} else {
		skip("builder container", "container system not available")
	}
	up := c.Running()
	starting := "" // a start holds the lock and sshd does not answer yet
	if up {
		pp, ok := c.PublishedTo(22)
		switch {
		case !ok:
			add(Check{Name: "published port", Result: Fail, Detail: "port 22 is not published", Fix: "wrapix-builder stop && wrapix-builder start", Kind: problem.Unhealthy})
		case pp.HostAddress != "127.0.0.1":
			add(Check{Name: "published port", Result: Fail, Detail: fmt.Sprintf("published on %s:%d — reachable from other machines", pp.HostAddress, pp.HostPort),
				Fix: "wrapix-builder stop && wrapix-builder start (it publishes on 127.0.0.1 only)", Kind: problem.Unhealthy})
		case pp.HostPort != b.Config.ContainerPort:
			add(Check{Name: "published port", Result: Fail, Detail: fmt.Sprintf("published on port %d, container-port is %d", pp.HostPort, b.Config.ContainerPort), Fix: "wrapix-builder stop && wrapix-builder start", Kind: problem.Unhealthy})
		default:
			add(Check{Name: "published port", Result: OK, Detail: b.SSHAddress()})
		}
		banner := checkBanner(ctx, b.SSHAddress())
		if what, pid, ok := lock.Holder(b.Layout.LockFile()); ok && what == "start" && banner.Result != OK {
			// A start in progress: until sshd is up Apple's forwarder resets
			// every connection, which is no Local Network or VPN problem.
			starting = fmt.Sprintf("starting: `wrapix-builder start` (pid %d) is bringing the builder up", pid)
			banner = Check{Name: "SSH banner", Result: Warn, Detail: starting + "; sshd does not answer yet",
				Fix: "wait for it (`wrapix-builder status`), then run `wrapix-builder doctor` again"}
		}
		add(banner)
	} else {
		skip("published port", "builder not running")
		skip("SSH banner", "builder not running")
	}
	if starting != "" {
		skip("SSH as the user (pinned host key)", starting)
		skip("nix-daemon on the builder", starting)
	} else if up && keyErr == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cl, err := b.Dial(dctx)
		if err != nil {
			add(fail("SSH as the user (pinned host key)", err, "run `wrapix-builder doctor` again after `wrapix-builder stop && wrapix-builder start`"))
			skip("nix-daemon on the builder", "no SSH")
		} else {
			add(Check{Name: "SSH as the user (pinned host key)", Result: OK, Detail: "builder@" + b.SSHAddress()})
			info, err := cl.NixDaemon(dctx)
			if err != nil {
				add(Check{Name: "nix-daemon on the builder", Result: Fail, Detail: err.Error(), Fix: "read `wrapix-builder logs`; restart with `wrapix-builder stop && wrapix-builder start`", Kind: problem.Unhealthy})
			} else {
				add(Check{Name: "nix-daemon on the builder", Result: OK, Detail: "Nix " + info.Version + ", protocol " + info.Protocol})
			}
			add(checkStoreIndex(dctx, cl))
			cl.Close()
		}
		cancel()
	} else {
		skip("SSH as the user (pinned host key)", "builder not running or no keys")
		skip("nix-daemon on the builder", "builder not running or no keys")
		skip("store directory", "builder not running or no keys")
	}

	if b.Config.Store == config.StoreVolume && runtimeOK {
		add(checkStoreDisk(ctx, b, up && keyErr == nil))
	} else {
		skip("store volume on the Mac", "no container system, or the store is a directory on the Mac")
	}

	out = append(out, checkWaker(b)...)

	// The Mac's side: root trust and Nix config.
	if keyErr == nil {
		nv, nvErr := lifecycle.HostNixVersion(ctx)
		st := setup.Check(opt.Root, b.Params(ks, nixconf.FormAlias))
		switch st.Trust {
		case setup.StateOK:
			add(Check{Name: "root's SSH trust", Result: OK, Detail: nixconf.SSHConfigPath + ", " + nixconf.KnownHostsPath + ", " + nixconf.RootKeyPath})
		default:
			add(Check{Name: "root's SSH trust", Result: Fail, Detail: st.Trust + ": " + st.Detail, Fix: "sudo wrapix-builder setup", Kind: problem.Setup})
		}
		if st.Trust == setup.StateOK && up && starting == "" && os.Geteuid() == 0 && opt.Root == "/" {
			add(checkRootSSH(ctx))
		} else {
			skip("SSH as root's config", "with the builder running, `sudo ssh -o BatchMode=yes wrapix-builder nix-daemon --version` tests root's ssh for real")
		}
		switch st.NixConfig {
		case setup.StateOK:
			add(Check{Name: "Nix builders entry", Result: OK, Detail: "managed by " + st.ManagedBy})
		default:
			fix := "sudo wrapix-builder setup"
			if st.NixConfig == setup.StateIgnored {
				fix = "edit that builders line as the detail says (setup never rewrites your builders setting), then restart the nix-daemon"
			} else if st.ManagedBy == "nix-darwin" {
				fix = "add `wrapix-builder config` to your nix-darwin configuration and darwin-rebuild switch"
			}
			add(Check{Name: "Nix builders entry", Result: Fail, Detail: st.NixConfig + ": " + st.Detail, Fix: fix, Kind: problem.Setup})
		}
		if nvErr != nil {
			add(Check{Name: "host Nix", Result: Fail, Detail: "`nix --version` failed: " + nvErr.Error(), Fix: "install Nix (https://nixos.org/download) or put it on PATH", Kind: problem.Setup})
		} else {
			add(hostNixCheck(nv))
		}
		add(checkLocalDaemon(opt.DaemonSocket))
	} else {
		skip("root's SSH trust", "no keys")
		skip("Nix builders entry", "no keys")
	}

	if goruntime.GOOS == "darwin" && up {
		add(checkRoute(ctx, c.IP))
	} else {
		skip("VPN routes", "applies to macOS with a running builder")
	}
	add(checkDisk(b.Layout.DataDir))
	return out
}

// checkBanner tells a dead forwarder or the Local Network permission (the
// published port accepts, then resets) from a working sshd.
// checkContainerSettings: a container made by an earlier wrapix-builder
// (store at /wrapix/store, bound over /nix by the entrypoint with an added
// CAP_SYS_ADMIN) still works, but holds a privilege the builder no longer
// needs; a restart recreates it with the current settings.
func checkContainerSettings(c *runtime.Container) Check {
	ck := Check{Name: "builder container settings", Result: OK, Detail: "store at /nix, no added capability"}
	if _, old := c.MountAt(lifecycle.OldStoreTarget); old || len(c.CapAdd) > 0 {
		ck.Result = Warn
		ck.Detail = "made by an earlier wrapix-builder: store at " + lifecycle.OldStoreTarget + ", added capabilities " + strings.Join(c.CapAdd, ",")
		ck.Fix = "recreate it with the current settings: `wrapix-builder stop && wrapix-builder start` (the store is kept)"
	}
	return ck
}

// checkRosetta: x86_64-linux is configured, so the builder runs with
// Rosetta; this says whether this container version and this Mac can.
func checkRosetta(b *lifecycle.Builder, v runtime.Version) Check {
	c := Check{Name: "x86_64-linux (Rosetta)", Result: OK, Detail: "container " + v.String() + " has `run --rosetta`; Rosetta is installed"}
	if goruntime.GOOS != "darwin" {
		c.Detail = "container " + v.String() + " has `run --rosetta`; this host runs x86_64 natively"
	}
	if err := b.RosettaProblem(v); err != nil {
		var p *problem.Error
		c.Result, c.Detail, c.Kind = Fail, err.Error(), problem.KindOf(err)
		if errors.As(err, &p) {
			c.Detail, c.Fix = p.What, p.Fix
		}
	}
	return c
}

// checkSandbox: what this container version lets the Nix sandbox do
// (README's version table).
func checkSandbox(b *lifecycle.Builder, v runtime.Version) Check {
	c := Check{Name: "Nix sandbox on the builder", Result: OK}
	switch w, warn := b.SandboxWarning(v); {
	case !b.Config.Sandbox:
		c.Detail = "off (sandbox = false in the config)"
	case warn:
		c.Result, c.Detail, c.Fix = Warn, w.What, w.Fix
	case v.HasMaskOptOut():
		c.Detail = "on (/proc unmasked with --masked-path NONE --read-only-path NONE; no added capability)"
	default:
		c.Detail = "on (this container version masks nothing; no added capability)"
	}
	return c
}

func checkBanner(ctx context.Context, addr string) Check {
	c := Check{Name: "SSH banner"}
	d := net.Dialer{Timeout: 3 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	// A reset that beats connect() itself is still accept-then-reset: the
	// forwarder accepted (a refusal would be ECONNREFUSED).
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.Result, c.Detail, c.Kind = Fail, err.Error(), problem.Unhealthy
		c.Fix = "nothing listens on " + addr + ": `wrapix-builder stop && wrapix-builder start`"
		return c
	}
	var line string
	if err == nil {
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		// The banner is the builder's, untrusted: at most 255 bytes (RFC 4253, 4.2), shown cleaned.
		var raw []byte
		raw, err = bufio.NewReaderSize(conn, 256).ReadSlice('\n')
		line = string(raw)
	}
	if err != nil || !strings.HasPrefix(line, "SSH-") {
		c.Result, c.Kind = Fail, problem.Unhealthy
		c.Detail = "the port accepts connections but no SSH server answers (connection reset)"
		c.Fix = lifecycle.LocalNetworkFix + "; and check for a VPN capturing the container subnet (see the VPN routes check)"
		return c
	}
	c.Result, c.Detail = OK, textclean.Line(strings.TrimSpace(line), 0)
	return c
}

func checkRootSSH(ctx context.Context) Check {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// What the builder prints is untrusted: 4 KiB kept, shown on one clean line.
	out := &sshclient.LimitedBuffer{Max: 4 << 10, Truncate: true}
	cmd := exec.CommandContext(ctx, "ssh", "-o", "BatchMode=yes", nixconf.Alias, "nix-daemon", "--version")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return Check{Name: "SSH as root's config", Result: Fail, Detail: out.Line(), Fix: "sudo wrapix-builder setup; then `sudo ssh -v wrapix-builder true` shows which step fails", Kind: problem.Setup}
	}
	return Check{Name: "SSH as root's config", Result: OK, Detail: "ssh wrapix-builder: " + out.Line()}
}

func checkLocalDaemon(socket string) Check {
	c := Check{Name: "nix-daemon on this machine"}
	conn, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		c.Result, c.Detail = Warn, "cannot connect to "+socket+": "+err.Error()
		c.Fix = "multi-user Nix needs its daemon: `sudo launchctl kickstart -k system/org.nixos.nix-daemon`"
		return c
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	info, err := nixdaemon.Handshake(conn)
	if err != nil {
		c.Result, c.Detail, c.Kind = Fail, err.Error(), problem.Setup
		c.Fix = "restart it: `sudo launchctl kickstart -k system/org.nixos.nix-daemon`"
		return c
	}
	c.Result, c.Detail = OK, "Nix "+info.Version+", protocol "+info.Protocol
	return c
}

// checkRoute asks macOS which interface reaches the container; a utun (VPN)
// interface means traffic to the builder goes into the tunnel.
func checkRoute(ctx context.Context, ip string) Check {
	c := Check{Name: "VPN routes"}
	if ip == "" {
		c.Result, c.Detail = Skip, "the container has no IP yet"
		return c
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/sbin/route", "-n", "get", ip).Output()
	if err != nil {
		c.Result, c.Detail = Warn, "`route -n get "+ip+"` failed: "+err.Error()
		return c
	}
	iface := RouteInterface(string(out))
	if strings.HasPrefix(iface, "utun") {
		c.Result, c.Kind = Fail, problem.Setup
		c.Detail = fmt.Sprintf("traffic to the builder (%s) goes through VPN interface %s", ip, iface)
		c.Fix = "sudo wrapix-builder setup (adds a route for the container subnet to the vmnet bridge)"
		return c
	}
	c.Result, c.Detail = OK, ip+" via "+iface
	return c
}

// RouteInterface reads the "interface:" line of `route -n get` output.
func RouteInterface(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && k == "interface" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// checkStoreDisk shows the store in use beside the disk its volume takes on
// the Mac, which only grows: `gc --compact` gives the difference back.
func checkStoreDisk(ctx context.Context, b *lifecycle.Builder, up bool) Check {
	u, err := b.VolumeUsage(ctx)
	if err != nil {
		return Check{Name: "store volume on the Mac", Result: Warn, Detail: "cannot measure: " + err.Error()}
	}
	if up {
		if n, err := b.StoreInUse(ctx); err == nil {
			u.UsedBytes = n
		}
	}
	return StoreDiskCheck(u, b.ReclaimPending())
}

// StoreDiskCheck decides the check from the numbers.
func StoreDiskCheck(u lifecycle.Usage, reclaimPending bool) Check {
	c := Check{Name: "store volume on the Mac", Result: OK}
	if reclaimPending {
		c.Result, c.Detail = Warn, "a `gc --compact` was interrupted; the old volume is still the store"
		c.Fix = "`wrapix-builder start` or `wrapix-builder gc --compact` finishes or undoes it"
		return c
	}
	if u.DiskBytes < 0 {
		c.Result, c.Detail = Skip, "no store volume yet"
		return c
	}
	c.Detail = config.HumanSize(u.DiskBytes) + " disk taken"
	if u.UsedBytes >= 0 {
		c.Detail = config.HumanSize(u.UsedBytes) + " in use, " + c.Detail
	} else {
		c.Detail += " (the store in use is measured while the builder runs)"
	}
	if n, ok := status.Reclaimable(u.DiskBytes, u.UsedBytes); ok {
		c.Result = Warn
		c.Detail += "; " + config.HumanSize(n) + " of it is freed space macOS does not get back by itself"
		c.Fix = "wrapix-builder gc --compact (copies the store into a fresh volume; the builder stops meanwhile)"
	}
	return c
}

func checkDisk(dir string) Check {
	c := Check{Name: "disk space"}
	for d := dir; ; d = parent(d) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			free := int64(st.Bavail) * int64(st.Bsize)
			c.Detail = config.HumanSize(free) + " free for " + d
			if free < 10<<30 {
				c.Result, c.Fix = Warn, "free some disk space: builds and the store volume grow"
			} else {
				c.Result = OK
			}
			return c
		}
		if d == "/" {
			c.Result, c.Detail = Skip, "cannot stat "+dir
			return c
		}
	}
}

func parent(p string) string {
	i := strings.LastIndexByte(strings.TrimSuffix(p, "/"), '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// Failed returns the first failed check, if any.
func Failed(checks []Check) (Check, bool) {
	for _, c := range checks {
		if c.Result == Fail {
			return c, true
		}
	}
	return Check{}, false
}

// Text renders the checks for the terminal.
func Text(checks []Check) string {
	var b strings.Builder
	marks := map[string]string{OK: "ok  ", Warn: "warn", Fail: "FAIL", Skip: "skip"}
	for _, c := range checks {
		fmt.Fprintf(&b, "[%s] %-36s %s\n", marks[c.Result], c.Name, c.Detail)
		if c.Fix != "" && c.Result != OK && c.Result != Skip {
			fmt.Fprintf(&b, "       fix: %s\n", c.Fix)
		}
	}
	return b.String()
}

// checkStoreIndex: is /nix/store an indexed directory (docs/store-index.md)?
// Unindexed, every lookup scans it and it holds at most 64998 store paths.
// The builder's answer is untrusted: only a mark and a number are read.
func checkStoreIndex(ctx context.Context, cl *sshclient.Client) Check {
	c := Check{Name: "store directory"}
	out, err := cl.Output(ctx, `if [ -e /nix/.wrapix-store-indexed ]; then echo indexed; else echo linear; fi; stat -c %h /nix/store`)
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 {
		c.Result, c.Detail = Warn, "cannot read /nix/store's state on the builder"
		return c
	}
	n, err := strconv.Atoi(f[1])
	if f[0] == "indexed" {
		c.Result, c.Detail = OK, "indexed (no limit on store paths)"
		return c
	}
	c.Result, c.Fix = Warn, "see why in `wrapix-builder logs` (\"/nix/store stays unindexed\") and docs/store-index.md; `wrapix-builder gc` frees room"
	c.Detail = "not indexed: every lookup scans it, and it holds at most 64998 store paths"
	if err == nil && n >= 2 {
		c.Detail += fmt.Sprintf(" (%d now)", n-2)
	}
	return c
}

// hostNixCheck names the host Nix and which builders URI form it can use,
// and why not the port form.
func hostNixCheck(nv nixconf.NixVersion) Check {
	d := "Nix " + nv.Raw + " (" + nv.Flavor + "); "
	if why := nv.PortURIWhyNot(); why != "" {
		d += "needs the ssh_config alias form: " + why
	} else {
		d += "supports ssh-ng://user@host:port"
	}
	return Check{Name: "host Nix", Result: OK, Detail: d}
}
