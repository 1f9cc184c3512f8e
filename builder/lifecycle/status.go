package lifecycle

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/builder/setup"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/textclean"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/builder/wakestate"
)

// StatusOptions tune what Status observes.
type StatusOptions struct {
	Root         string        // where /etc lives ("/" normally)
	ProbeTimeout time.Duration // SSH + nix-daemon probe; 3 s when zero
	HostNix      string        // the Mac's Nix version when already known (the app asks once): no `nix --version` then
	Builds       bool          // also read the running builds (status --json), on the probe's connection
}

// Status observes everything and decides the overall state. It never
// changes anything and takes no lock.
func (b *Builder) Status(ctx context.Context, opt StatusOptions) (r *status.Report) {
	if opt.Root == "" {
		opt.Root = "/"
	}
	if opt.ProbeTimeout == 0 {
		opt.ProbeTimeout = 3 * time.Second
	}
	r = &status.Report{
		Container: status.Container{Name: ContainerName},
		SSH:       status.SSH{Address: b.SSHAddress()},
		Store:     status.Store{Backend: b.Config.Store, CapBytes: b.Config.StoreSizeCap},
		Versions:  status.Versions{WrapixBuilder: version.Version},
	}
	r.Waker = b.wakerStatus()
	r.Store.Location = b.Layout.StoreDir()
	if b.Config.Store == "volume" {
		name, err := b.StoreVolume()
		if err != nil {
			r.Decide(err)
			return r
		}
		r.Store.Location = name
	}
	defer func() { // both numbers known: is compacting worth it?
		if r.Store.SizeBytes != nil && r.Store.UsedBytes != nil {
			if n, ok := status.Reclaimable(*r.Store.SizeBytes, *r.Store.UsedBytes); ok {
				r.Store.ReclaimableBytes = &n
			}
		}
	}()
	// The slow observations run concurrently: the host's `nix --version`
	// and the SSH probe (tried speculatively; it fails fast when nothing listens).
	nixVersion := make(chan string, 1)
	go func() {
		if opt.HostNix != "" {
			nixVersion <- opt.HostNix
		} else if nv, err := HostNixVersion(ctx); err == nil {
			nixVersion <- nv.Raw
		}
		close(nixVersion)
	}()
	defer func() { r.Versions.HostNix = <-nixVersion }()

	ks, keyErr := keys.Load(b.Layout)
	type probeOutcome struct {
		res ProbeResult
		err error
	}
	probed := make(chan probeOutcome, 1)
	var running *status.Builds // written by the probe before it reports
	var used int64 = -1        // likewise
	if keyErr == nil {
		go func() {
			extra := func(ctx context.Context, c *sshclient.Client) {
				if out, err := c.Output(ctx, statFSCommand); err == nil {
					if n, err := parseStatFS(string(out)); err == nil {
						used = n
					}
				}
				if opt.Builds {
					if h, _, err := LoadBuilds(ctx, c, 0); err == nil {
						running = &status.Builds{Running: h.Doc(time.Now(), 0).Running}
					}
				}
			}
			res, err := b.probeWith(ctx, ks, opt.ProbeTimeout, extra)
			probed <- probeOutcome{res, err}
		}()
		p := b.Params(ks, nixconf.FormAlias)
		st := setup.Check(opt.Root, p)
		r.Setup = status.Setup{Trust: st.Trust, NixConfig: st.NixConfig, ManagedBy: st.ManagedBy, Detail: st.Detail}
		r.SSH.HostKeyFingerprint = ks.Host.Fingerprint()
	} else {
		r.Setup = status.Setup{Trust: setup.StateMissing, NixConfig: setup.StateMissing, ManagedBy: "wrapix-builder", Detail: "no keys yet"}
	}

	v, err := b.CLI.Version(ctx)
	if err != nil {
		r.Decide(err)
		return r
	}
	r.Versions.ContainerCLI = v.String()
	if w, ok := b.SandboxWarning(v); ok {
		r.Warnings = append(r.Warnings, w)
	}
	c, err := b.CLI.Get(ctx, ContainerName)
	if runtime.IsClass(err, runtime.ErrAPIServerDown) {
		// Nothing runs while the service is down: the builder is stopped, and start fixes it.
		r.Decide(nil)
		r.Summary = "stopped (the container system service is not running; `wrapix-builder start` starts it)"
		return r
	}
	if err != nil {
		r.Decide(err)
		return r
	}
	if c != nil {
		r.Container.Exists, r.Container.State, r.Container.IP, r.Container.Image = true, c.State, c.IP, c.Image
		if !c.StartedAt.IsZero() {
			t := c.StartedAt
			r.Container.StartedAt = &t
		}
		if pp, ok := c.PublishedTo(22); ok {
			r.Container.Published = pp.HostAddress + ":" + strconv.Itoa(pp.HostPort)
		}
		m, ok := c.MountAt(StoreTarget)
		if !ok {
			m, ok = c.MountAt(OldStoreTarget)
		}
		if ok && m.Type == "volume" {
			if n, ok := allocatedBytes(m.Source); ok {
				r.Store.SizeBytes = &n
			}
		}
	}
	if b.Config.Store == "volume" && r.Store.SizeBytes == nil {
		// No container (stop deletes it): the image's path from the volume itself.
		if u, err := b.VolumeUsage(ctx); err == nil {
			if u.DiskBytes >= 0 {
				r.Store.SizeBytes = &u.DiskBytes
			}
			if u.VolumeBytes > 0 {
				r.Store.VolumeBytes = &u.VolumeBytes
			}
		}
	}
	if c.Running() && keyErr == nil {
		out := <-probed
		res, err := out.res, out.err
		if res.SSHLatency > 0 {
			r.SSH.OK = true
			r.SSH.LatencyMillis = float64(res.SSHLatency.Microseconds()) / 1000
		}
		if err != nil {
			// Errors can quote the builder (its stderr, the algorithms its sshd offers): one clean line.
			if r.SSH.OK {
				r.NixDaemon.Error = textclean.Line(strings.TrimPrefix(err.Error(), "nix-daemon: "), 500)
			} else {
				r.SSH.Error = textclean.Line(err.Error(), 500)
			}
		} else {
			r.NixDaemon = status.NixDaemon{OK: true, Version: res.Daemon, Protocol: res.Protocol}
			r.Builds = running
			if used >= 0 {
				r.Store.UsedBytes = &used
			}
		}
	} else if c.Running() {
		r.SSH.Error = keyErr.Error()
	}
	r.Decide(nil)
	return r
}

// SandboxWarning is the warning for a CLI on which the builder runs without
// the Nix sandbox although the config asks for it (container 1.2.0).
func (b *Builder) SandboxWarning(v runtime.Version) (status.Warning, bool) {
	if !b.Config.Sandbox || !v.SandboxUnavailable() {
		return status.Warning{}, false
	}
	return status.Warning{
		What: "builds run WITHOUT the Nix sandbox: container " + v.String() + " masks /proc and has no way to turn that off",
		Fix:  "upgrade Apple's container CLI to 1.2.1 or newer (https://github.com/apple/container/releases), then `wrapix-builder stop && wrapix-builder start`",
	}, true
}

// wakerStatus reads what `serve` last wrote; it never connects to the port
// (that would wake the builder).
func (b *Builder) wakerStatus() status.Waker {
	w := status.Waker{Address: b.NixAddress(), IdleStopSeconds: int64(b.Config.IdleStop / time.Second)}
	s, alive, err := wakestate.Read(b.Layout.DataDir)
	if err != nil || s == nil {
		return w
	}
	w.IdleStoppedAt = s.IdleStopAt
	if s.LastFailure != nil {
		w.LastFailure = &status.WakeFailure{At: s.LastFailure.At, Reason: s.LastFailure.Reason, Attempts: s.LastFailure.Attempts, RetryAt: s.LastFailure.RetryAt}
	}
	if !alive {
		return w
	}
	w.Running, w.PID, w.User, w.IdleStopSeconds, w.Connections = true, s.PID, s.User, s.IdleStopSec, s.Connections
	w.StopsAt = s.StopsAt
	return w
}

// allocatedBytes is the space a (sparse) volume image really uses on the Mac.
func allocatedBytes(path string) (int64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Blocks * 512, true
}

// HostNixVersion runs `nix --version` on the Mac.
func HostNixVersion(ctx context.Context) (nixconf.NixVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nix, err := toolpath.Nix.Find() // launchd's PATH has no Nix
	if err != nil {
		return nixconf.NixVersion{}, err
	}
	out, err := exec.CommandContext(ctx, nix.Path, "--version").Output()
	if err != nil {
		return nixconf.NixVersion{}, err
	}
	return nixconf.ParseNixVersion(strings.TrimSpace(string(out)))
}
