// Package lifecycle is the builder as one object: start, stop, status and
// SSH access, shared by the CLI and the app. Start and stop hold a lock so
// that both may act at the same time without corrupting anything.
package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lock"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
)

// Names the container is known by.
const (
	ContainerName  = "wrapix-builder"
	LabelKey       = "org.wrapix.builder"
	StoreTarget    = "/nix"          // the store volume, mounted by the runtime: the entrypoint needs no CAP_SYS_ADMIN
	OldStoreTarget = "/wrapix/store" // where containers made before 0.2 had it (the entrypoint bound it over /nix)
	KeysTarget     = "/wrapix/keys"  // read-only: host key + client public key only
	StopGrace      = 15 * time.Second
)

// Builder ties the configuration to the runtime.
type Builder struct {
	Layout   paths.Layout
	Config   config.Config
	CLI      *runtime.CLI
	Progress func(msg string) // start/stop steps, for the user; may be nil
	// OnDemand: a start for a connecting build (serve). It never builds the
	// image — that can take longer than the build waits to connect (issue
	// 17 point 4); without one it fails at once, naming the fix.
	OnDemand bool
	// BundledImage: the image archive of the app bundle this program runs
	// from (BundledImageArchive), used when config.toml names none.
	BundledImage string
}

// DefaultContainerCLI is the container CLI's name, looked up on $PATH and
// then in the well-known places.
const DefaultContainerCLI = "container"

// New returns a builder for the given layout and config, driving the
// container CLI named cli (DefaultContainerCLI normally, which the config's
// container-cli overrides).
func New(l paths.Layout, c config.Config, cli string) *Builder {
	if cli == DefaultContainerCLI && c.ContainerCLI != "" {
		cli = c.ContainerCLI
	}
	r := runtime.New(cli)
	r.ConfigFile = l.ConfigFile()
	return &Builder{Layout: l, Config: c, CLI: r, BundledImage: bundledImage()}
}

func (b *Builder) say(format string, args ...any) {
	if b.Progress != nil {
		b.Progress(fmt.Sprintf(format, args...))
	}
}

// SSHAddress is where the container publishes the builder's sshd. Our own
// tools (readiness, status, ssh, gc, the idle check) connect here, so they
// never wake the builder nor keep it awake.
func (b *Builder) SSHAddress() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Config.ContainerPort))
}

// NixAddress is where Nix and ssh connect (the machines entry, the ssh_config
// alias): `wrapix-builder serve` owns it and wakes the builder on demand.
func (b *Builder) NixAddress() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Config.Port))
}

func (b *Builder) lock(ctx context.Context, what string) (*lock.Lock, error) {
	return lock.Acquire(ctx, b.Layout.LockFile(), what, func(holder string) {
		b.say("waiting for another operation to finish (%s)…", holder)
	})
}

// Prepare makes ready, without running the builder, what a start needs and
// cannot make quickly: the container system, the keys, and the image
// (built with progress when missing). The app's Run setup… calls it before
// the administrator prompt, so that the root setup finds the keys and a
// build's on-demand start finds the image (issue 17 points 4 and 8).
func (b *Builder) Prepare(ctx context.Context) error {
	l, err := b.lock(ctx, "prepare")
	if err != nil {
		return err
	}
	defer l.Release()
	v, err := b.CLI.Version(ctx)
	if err != nil {
		return err
	}
	// What start would refuse, setup refuses before the password.
	if err := b.RosettaProblem(v); err != nil {
		return err
	}
	// The kernel too: setup's first start must not find a system without one.
	if err := b.ensureSystem(ctx); err != nil {
		return err
	}
	if _, err := keys.Ensure(b.Layout); err != nil {
		return err
	}
	return b.ensureImage(ctx)
}

// Start makes the builder ready. It is idempotent: a ready builder is left
// alone. It returns only when SSH answers with the pinned host key and
// nix-daemon responds, or with the reason it could not.
func (b *Builder) Start(ctx context.Context) (alreadyRunning bool, err error) {
	l, err := b.lock(ctx, "start")
	if err != nil {
		return false, err
	}
	defer l.Release()

	v, err := b.CLI.Version(ctx)
	if err != nil {
		return false, err
	}
	if err := b.RosettaProblem(v); err != nil {
		return false, err
	}
	if err := b.ensureSystem(ctx); err != nil {
		return false, err
	}
	ks, err := keys.Ensure(b.Layout)
	if err != nil {
		return false, err
	}
	c, err := b.CLI.Get(ctx, ContainerName)
	if err != nil {
		return false, err
	}
	if c != nil && c.Labels[LabelKey] == "" {
		return false, problem.Newf(problem.Conflict, "rename or delete it: `container stop "+ContainerName+"` then `container delete "+ContainerName+"`",
			"a container named %q exists that wrapix-builder did not create", ContainerName)
	}
	if c.Running() {
		if err := b.checkPublished(c); err != nil {
			return false, err
		}
		if b.WantsRosetta() && !c.Rosetta {
			b.say("WARNING: %s; fix: %s", NoRosettaWarning, RestartFix)
		}
		if c.Image != "" && !sameImage(c.Image, b.Config.Image) {
			// Upgraded while it ran: the new image runs from the next start.
			b.say("the builder runs the image %s, not %s; to run it: `wrapix-builder stop`, then `wrapix-builder start` (the store is kept)", c.Image, b.Config.Image)
		}
		if _, err := b.probe(ctx, ks, 5*time.Second); err == nil {
			b.say("already running and ready at %s", b.SSHAddress())
			return true, nil
		}
		b.say("the builder is running; waiting for it to become ready…")
		return false, b.waitReady(ctx, ks)
	}
	if c != nil { // stopped or stuck: recreate it with the current settings; the store is kept
		if err := b.CLI.Stop(ctx, ContainerName, StopGrace); err != nil {
			return false, err
		}
		if err := b.CLI.Delete(ctx, ContainerName); err != nil {
			return false, err
		}
	}
	if b.Config.Store == config.StoreVolume { // a compaction killed mid-way is finished or undone first
		if _, err := b.recoverReclaim(ctx); err != nil {
			return false, err
		}
	}
	if err := b.ensureImage(ctx); err != nil {
		return false, err
	}
	storeSource, err := b.ensureStore(ctx)
	if err != nil {
		return false, err
	}
	if err := b.checkStoreFree(ctx, storeSource); err != nil {
		return false, err
	}
	if err := b.checkPortFree(); err != nil {
		return false, err
	}
	spec := b.runSpec(storeSource, ks, v)
	if w, ok := b.SandboxWarning(v); ok {
		b.say("WARNING: %s; fix: %s", w.What, w.Fix)
	}
	b.say("starting container %s (%d CPUs, %s memory, store: %s)…", ContainerName, spec.CPUs, runtime.MemoryArg(spec.MemoryBytes), b.Config.Store)
	err = b.CLI.Run(ctx, spec)
	if runtime.IsClass(err, runtime.ErrKernelMissing) {
		// The kernel check before found one where the apiserver finds none
		// (an app root we could not read): install it and try once more.
		b.say("the container system has no Linux kernel; installing the recommended one (about 570 MB)…")
		if err := b.CLI.KernelInstall(ctx, b.sayKernel); err != nil {
			return false, err
		}
		err = b.CLI.Run(ctx, spec)
	}
	if err != nil {
		switch {
		case runtime.IsClass(err, runtime.ErrAlreadyExists):
			return false, problem.Wrap(problem.Conflict, err, "another process created the builder container at the same time", "run `wrapix-builder status`")
		case runtime.IsClass(err, runtime.ErrPortInUse):
			return false, b.portInUse(err)
		}
		return false, problem.Wrap(problem.Runtime, err, "cannot start the builder container", "see `wrapix-builder doctor`")
	}
	if err := b.waitReady(ctx, ks); err != nil {
		return false, err
	}
	b.dropOlderImages(ctx)
	return false, nil
}

func (b *Builder) runSpec(storeSource string, ks *keys.Set, v runtime.Version) runtime.RunSpec {
	// 1.2.0 masks /proc with no opt-out: the sandbox cannot mount its own
	// /proc, so the builder runs without it (status, doctor and the menu warn).
	sandbox := b.Config.Sandbox && !v.SandboxUnavailable()
	return runtime.RunSpec{
		Name:        ContainerName,
		Image:       b.Config.Image,
		Labels:      map[string]string{LabelKey: "1"},
		HostPort:    b.Config.ContainerPort,
		CPUs:        b.Config.CPUs,
		MemoryBytes: b.Config.MemoryBytes,
		Mounts: []runtime.MountSpec{
			{Source: storeSource, Target: StoreTarget},
			{Source: ks.GuestDir, Target: KeysTarget, ReadOnly: true},
		},
		Env: []string{
			"WRAPIX_STORE_BACKEND=" + b.Config.Store,
			"WRAPIX_MAX_JOBS=" + strconv.Itoa(b.Config.MaxJobs),
			"WRAPIX_CORES=" + strconv.Itoa(b.Config.CPUs),
			"WRAPIX_SYSTEMS=" + strings.Join(b.Config.Systems, " "),
			"WRAPIX_FEATURES=" + strings.Join(b.Config.SupportedFeatures, " "),
			"WRAPIX_SANDBOX=" + strconv.FormatBool(sandbox),
			"WRAPIX_STORE_CAP=" + strconv.FormatInt(b.Config.StoreSizeCap, 10),
		},
		FullProc: sandbox,
		Rosetta:  b.WantsRosetta(),
	}
}

func (b *Builder) ensureImage(ctx context.Context) error {
	ok, err := b.CLI.ImageExists(ctx, b.Config.Image)
	if err != nil || ok {
		return err
	}
	archive, from := b.ImageArchive()
	if archive == "" && b.OnDemand {
		return problem.Newf(problem.Runtime, "run `wrapix-builder start` once (it builds the image, with progress), or choose Start in the app",
			"the builder image %s is not loaded, and a start for a connecting build does not build it (that takes longer than the build waits)", b.Config.Image)
	}
	if archive == "" {
		// First start without an image: build the one pinned to this version (docs/on-demand.md).
		if archive, err = b.buildImage(ctx); err != nil {
			return err
		}
	}
	b.say("loading the builder image from %s…", archive)
	refs, err := b.CLI.ImageLoad(ctx, archive)
	if err != nil {
		fix := "check that it is an OCI-layout tar (`make image`)"
		if from == fromBundle {
			fix = "reinstall the app, or set image-archive in " + b.Layout.ConfigFile()
		}
		return problem.Wrap(problem.Runtime, err, "cannot load the builder image from "+archive, fix)
	}
	for _, r := range refs {
		if sameImage(r, b.Config.Image) {
			return nil
		}
	}
	return problem.Newf(problem.Config, "set image = one of the loaded references in "+b.Layout.ConfigFile(),
		"%s provides %s, not the configured image %s", archive, strings.Join(refs, ", "), b.Config.Image)
}

// ensureStore creates the store backend and returns the mount source.
func (b *Builder) ensureStore(ctx context.Context) (string, error) {
	if b.Config.Store == config.StoreVolume {
		name, err := b.StoreVolume()
		if err != nil {
			return "", err
		}
		created, err := b.CLI.VolumeEnsure(ctx, name)
		if err != nil {
			return "", err
		}
		if created {
			b.say("created store volume %s", name)
		}
		return name, nil
	}
	dir := b.Layout.StoreDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", problem.Wrap(problem.Internal, err, "cannot create the store directory "+dir, "")
	}
	insensitive, err := caseInsensitive(dir)
	if err != nil {
		return "", problem.Wrap(problem.Internal, err, "cannot check the store directory "+dir, "")
	}
	if insensitive {
		return "", problem.Newf(problem.Config,
			`use store = "volume" in `+b.Layout.ConfigFile()+`, or put $XDG_DATA_HOME on a case-sensitive APFS volume (Disk Utility ▸ Add Volume ▸ APFS (Case-sensitive))`,
			"the store directory %s is on a case-insensitive filesystem, where Linux store paths collide", dir)
	}
	return dir, nil
}

// caseInsensitive creates a probe file and looks for it under another case.
func caseInsensitive(dir string) (bool, error) {
	f, err := os.CreateTemp(dir, ".wrapix-case-probe-")
	if err != nil {
		return false, err
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	other := filepath.Join(dir, strings.ToUpper(filepath.Base(name)))
	if other == name {
		return false, errors.New("probe name has no letters")
	}
	_, err = os.Stat(other)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (b *Builder) checkPublished(c *runtime.Container) error {
	pp, ok := c.PublishedTo(22)
	if ok && pp.HostAddress == "127.0.0.1" && pp.HostPort == b.Config.ContainerPort {
		return nil
	}
	where := "not published"
	if ok {
		where = fmt.Sprintf("published on %s:%d", pp.HostAddress, pp.HostPort)
	}
	return problem.Newf(problem.Conflict, "recreate it with the current settings: `wrapix-builder stop && wrapix-builder start`",
		"the running builder's SSH port is %s, not 127.0.0.1:%d", where, b.Config.ContainerPort)
}

// checkStoreFree refuses to start while another running container has the
// store attached (see StoreHeldBy).
func (b *Builder) checkStoreFree(ctx context.Context, storeSource string) error {
	id, err := b.storeHeldBy(ctx, storeSource)
	if err != nil || id == "" {
		return err
	}
	return problem.Newf(problem.Conflict, "stop it first: `container stop "+id+"`",
		"the %s is attached to the running container %s", b.storeName(storeSource), id)
}

// StoreHeldBy names a running container other than the builder that has the
// store attached, or "". `container run` does not check this (Apple's CLI
// throws volumeInUse only from `volume rm`, VolumesService.swift, 0.6.0 …
// 1.2.2), and two VMs writing one ext4 image, or two daemons on one store
// directory, corrupt the store.
func (b *Builder) StoreHeldBy(ctx context.Context) (id, store string, err error) {
	source := b.Layout.StoreDir()
	if b.Config.Store == config.StoreVolume {
		if source, err = b.StoreVolume(); err != nil {
			return "", "", err
		}
	}
	id, err = b.storeHeldBy(ctx, source)
	return id, b.storeName(source), err
}

func (b *Builder) storeName(source string) string {
	if b.Config.Store == config.StoreVolume {
		return "store volume " + source
	}
	return "store directory " + source
}

func (b *Builder) storeHeldBy(ctx context.Context, storeSource string) (string, error) {
	cs, err := b.CLI.List(ctx)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if c.ID == ContainerName || (!c.Running() && c.State != runtime.StateStopping) {
			continue
		}
		for _, m := range c.Mounts {
			if (m.Type == "volume" && m.VolumeName == storeSource) || (m.Type != "volume" && m.Source == storeSource) {
				return c.ID, nil
			}
		}
	}
	return "", nil
}

func (b *Builder) checkPortFree() error {
	ln, err := net.Listen("tcp", b.SSHAddress())
	if err != nil {
		return b.portInUse(err)
	}
	ln.Close()
	return nil
}

func (b *Builder) portInUse(err error) error {
	p := b.Config.ContainerPort
	return problem.Wrap(problem.Conflict, err, fmt.Sprintf("port %d on 127.0.0.1 (container-port) is taken by another program", p),
		fmt.Sprintf("stop that program (`lsof -nP -iTCP:%d -sTCP:LISTEN` shows it) or set container-port = %d in %s", p, b.Config.Port+2, b.Layout.ConfigFile()))
}

// Stop stops the builder gracefully and deletes the container; the store and
// keys stay. Stopping a stopped builder is not an error.
func (b *Builder) Stop(ctx context.Context) (wasRunning bool, err error) {
	l, err := b.lock(ctx, "stop")
	if err != nil {
		return false, err
	}
	defer l.Release()
	return b.stopLocked(ctx)
}

// stopLocked is Stop with the lock already held.
func (b *Builder) stopLocked(ctx context.Context) (wasRunning bool, err error) {
	c, err := b.CLI.Get(ctx, ContainerName)
	if err != nil {
		return false, err
	}
	if c == nil {
		return false, nil
	}
	if c.Labels[LabelKey] == "" {
		return false, problem.Newf(problem.Conflict, "leave it or remove it yourself with `container stop` and `container delete`",
			"the container %q was not created by wrapix-builder; not stopping it", ContainerName)
	}
	if c.Running() || c.State == runtime.StateStopping {
		b.say("stopping %s…", ContainerName)
		if err := b.CLI.Stop(ctx, ContainerName, StopGrace); err != nil {
			return true, err
		}
	}
	if err := b.CLI.Delete(ctx, ContainerName); err != nil {
		return c.Running(), err
	}
	return c.Running(), nil
}

// Dial connects to the builder over SSH with the pinned host key.
func (b *Builder) Dial(ctx context.Context) (*sshclient.Client, error) {
	ks, err := keys.Load(b.Layout)
	if err != nil {
		return nil, err
	}
	return b.dial(ctx, ks)
}

func (b *Builder) dial(ctx context.Context, ks *keys.Set) (*sshclient.Client, error) {
	c, err := sshclient.Dial(ctx, b.SSHAddress(), sshclient.User, ks.Client.Signer, ks.Host.Public)
	if errors.Is(err, sshclient.ErrHostKeyMismatch) {
		return nil, problem.Wrap(problem.Keys, err, "refusing to talk to "+b.SSHAddress(),
			"if the builder was started before a key rotation, `wrapix-builder stop && wrapix-builder start`; otherwise another program answers on that port")
	}
	return c, err
}

// ProbeResult is one readiness check.
type ProbeResult struct {
	SSHLatency time.Duration
	Daemon     string // nix-daemon's Nix version, or its protocol
	Protocol   string
}

// probe connects and proves nix-daemon answers: it runs
// `nix-daemon --stdio` as Nix's ssh-ng store does.
func (b *Builder) probe(ctx context.Context, ks *keys.Set, timeout time.Duration) (ProbeResult, error) {
	return b.probeWith(ctx, ks, timeout, nil)
}

// probeWith is probe that also runs extra on the connection, beside the
// nix-daemon check (one connection, no added round trips of its own).
func (b *Builder) probeWith(ctx context.Context, ks *keys.Set, timeout time.Duration, extra func(context.Context, *sshclient.Client)) (ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	c, err := b.dial(ctx, ks)
	if err != nil {
		return ProbeResult{}, err
	}
	defer c.Close()
	if extra != nil {
		done := make(chan struct{})
		go func() { defer close(done); extra(ctx, c) }()
		defer func() { <-done }() // before the Close above
	}
	r := ProbeResult{SSHLatency: time.Since(t0)}
	info, err := c.NixDaemon(ctx)
	if err != nil {
		return r, fmt.Errorf("nix-daemon: %w", err)
	}
	r.Daemon, r.Protocol = info.Version, info.Protocol
	return r, nil
}

// Readiness polling: the first check after ReadyPollMin, each next one 1.5×
// later, at most ReadyPollMax apart. While sshd is down Apple's forwarder
// accepts each dial and resets it, and container-runtime-linux logs every
// reset at error level (apple/container ConnectHandler.swift): a fixed 10 ms
// poll logged ~100 errors a second during every start.
const (
	ReadyPollMin = 10 * time.Millisecond
	ReadyPollMax = 250 * time.Millisecond
)

// waitReady polls until the builder is ready, it stopped, or the start
// timeout. The cheap check (an SSH banner on the port) runs from every 10 ms,
// backing off to every 250 ms; the container's state and its progress lines
// are read every half second; the full probe (pinned host key, `nix-daemon
// --stdio`) runs once a banner shows.
func (b *Builder) waitReady(ctx context.Context, ks *keys.Set) error {
	ctx, cancel := context.WithTimeout(ctx, b.Config.StartTimeout)
	defer cancel()
	var last error
	lastSaid, lastState := time.Now(), time.Time{}
	seen := map[string]bool{}
	poll := ReadyPollMin
	var ln localNet
	for {
		g := sshGreeting(ctx, b.SSHAddress())
		ln.observe(g, time.Now())
		if g == sshGreeted {
			r, err := b.probe(ctx, ks, 10*time.Second)
			if err == nil {
				if ln.said {
					b.say("Local Network access is allowed now")
				}
				b.say("ready at %s (nix-daemon %s)", b.SSHAddress(), r.Daemon)
				return nil
			}
			if problem.Is(err, problem.Keys) {
				return err
			}
			last = err
		}
		if time.Since(lastState) > 500*time.Millisecond {
			lastState = time.Now()
			c, err := b.CLI.Get(ctx, ContainerName)
			if err != nil {
				return err
			}
			if c == nil || c.State == runtime.StateStopped {
				return problem.New(problem.Unhealthy, "the builder container stopped while starting", "read `wrapix-builder logs` for the reason")
			}
			said := b.showProgress(ctx, seen, ln.suspect(time.Now()))
			ln.sawLog(seen, time.Now())
			if ln.denied(time.Now()) && !ln.said {
				ln.said = true
				b.say("WAITING FOR PERMISSION: macOS blocks the builder's network (every connection to %s is reset while sshd runs inside): %s; the start goes on by itself once it is allowed",
					b.SSHAddress(), LocalNetworkFix)
			}
			if said {
				lastSaid = time.Now()
			} else if time.Since(lastSaid) > 5*time.Second {
				b.say("still waiting for the builder…")
				lastSaid = time.Now()
			}
		}
		select {
		case <-ctx.Done():
			if ln.denied(time.Now()) {
				return b.localNetworkDenied()
			}
			if last == nil {
				last = ctx.Err()
			}
			return problem.Wrap(problem.Timeout, last, fmt.Sprintf("the builder did not become ready within %s", b.Config.StartTimeout),
				"read `wrapix-builder logs`, run `wrapix-builder doctor`, or raise start-timeout in "+b.Layout.ConfigFile())
		case <-time.After(poll):
		}
		poll = min(poll*3/2, ReadyPollMax)
	}
}

// Params are the values the Nix/ssh outputs are generated from.
func (b *Builder) Params(ks *keys.Set, form string) nixconf.Params {
	return nixconf.Params{
		User:           sshclient.User,
		Port:           b.Config.Port,
		Systems:        b.Config.Systems,
		MaxJobs:        b.Config.MaxJobs,
		SpeedFactor:    b.Config.SpeedFactor,
		Features:       b.Config.SupportedFeatures,
		HostKey:        ks.Host.AuthorizedLine(),
		HostKeyBase64:  ks.HostKeyBase64(),
		UseSubstitutes: b.Config.UseSubstitutes,
		Form:           form,
	}
}

// RotateKeys replaces keys deliberately. The builder must be stopped: it
// would keep presenting the old host key until restarted.
func (b *Builder) RotateKeys(ctx context.Context, which keys.Which, now time.Time) (string, error) {
	l, err := b.lock(ctx, "keys rotate")
	if err != nil {
		return "", err
	}
	defer l.Release()
	if _, err := b.CLI.Version(ctx); err == nil {
		c, err := b.CLI.Get(ctx, ContainerName)
		if err != nil {
			return "", err
		}
		if c.Running() {
			return "", problem.New(problem.Conflict, "the builder is running", "stop it first: `wrapix-builder stop`, rotate, then start it again")
		}
	}
	return keys.Rotate(b.Layout, which, now)
}

// showProgress relays the entrypoint's progress lines ("wrapix-builder: …",
// e.g. the first start's store initialisation) from the container's log.
// With force it reads the log even when nobody is shown the lines (the
// Local Network check needs them).
func (b *Builder) showProgress(ctx context.Context, seen map[string]bool, force bool) bool {
	if b.Progress == nil && !force {
		return false
	}
	var out bytes.Buffer
	if err := b.CLI.Logs(ctx, ContainerName, false, 20, &out, io.Discard); err != nil {
		return false
	}
	said := false
	for _, line := range strings.Split(out.String(), "\n") {
		msg, ok := strings.CutPrefix(strings.TrimSpace(line), "wrapix-builder: ")
		if !ok || seen[msg] {
			continue
		}
		seen[msg] = true
		b.say("builder: %s", msg)
		said = true
	}
	return said
}
