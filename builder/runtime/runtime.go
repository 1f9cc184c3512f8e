// Package runtime drives Apple's `container` CLI: it finds the binary outside
// launchd's PATH, detects the version and gates flags on it, reads both JSON
// generations, classifies errors by exit code and error code (confirming
// "gone" with the listings where a version prints no code) and puts a
// deadline on every call. It never relies on `delete --force` to stop anything.
package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
)

// Timeouts for CLI calls. Every call has one: stop and exec are known to hang.
const (
	DefaultTimeout     = 30 * time.Second
	SystemStartTimeout = 10 * time.Minute // first start downloads a kernel
	ImageLoadTimeout   = 10 * time.Minute
)

// CLI is the container CLI at Path.
type CLI struct {
	// Path is "container" (looked up on $PATH, then in the well-known
	// places: see toolpath) or an absolute path (the config's container-cli).
	Path       string
	Timeout    time.Duration // per call; DefaultTimeout when zero
	ConfigFile string        // named in the fix when the CLI is not found

	mu      sync.Mutex // one version probe at a time
	version *Version   // cached after the first successful probe only
}

// New returns the CLI named name: a bare name is looked up on $PATH and then
// in the well-known places; an absolute path is used as is.
func New(name string) *CLI { return &CLI{Path: name} }

func (c *CLI) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

var errMissingFix = "install Apple's container CLI (1.x) from https://github.com/apple/container/releases, then run `container system start`"

// Resolve finds the CLI binary: an absolute Path as configured, otherwise
// Path on $PATH and then in the well-known places (toolpath.Container). It
// looks again on every call, so a CLI installed while the app runs is found.
func (c *CLI) Resolve() (toolpath.Found, error) {
	if filepath.IsAbs(c.Path) {
		if err := toolpath.Executable(c.Path); err != nil {
			return toolpath.Found{}, problem.Wrap(problem.Runtime, err, "the container CLI "+c.Path+" cannot be run",
				"point container-cli in "+c.configFile()+" at Apple's `container` binary (usually /usr/local/bin/container), or remove the key")
		}
		return toolpath.Found{Path: c.Path, Source: toolpath.FromOverride}, nil
	}
	tool := toolpath.Container
	tool.Name = c.Path
	f, err := tool.Find()
	if err != nil {
		return f, problem.Wrap(problem.Runtime, err, "Apple's `container` CLI was not found",
			"install Apple's container CLI (1.x) from https://github.com/apple/container/releases (it goes to /usr/local/bin), "+
				"or set container-cli = \"/path/to/container\" in "+c.configFile())
	}
	return f, nil
}

func (c *CLI) configFile() string {
	if c.ConfigFile != "" {
		return c.ConfigFile
	}
	return "config.toml"
}

// exec runs the CLI with a deadline and stdin closed (so a prompt can never
// wait for us), returning stdout. A non-zero exit is a *CLIError.
func (c *CLI) exec(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	found, err := c.Resolve()
	if err != nil {
		return nil, err
	}
	path := found.Path
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, nil
	cmd.WaitDelay = 2 * time.Second // don't wait on grandchildren holding the pipes
	err = cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return nil, problem.Newf(problem.Timeout,
			"check `container system status`; if it hangs too, restart the service with `container system stop` and `container system start`",
			"`container %s` did not answer within %s", strings.Join(args, " "), timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ce := newCLIError(args, ee.ExitCode(), stderr.String())
			ce.Stdout = stdout.String()
			return stdout.Bytes(), ce
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, problem.Wrap(problem.Runtime, err, "cannot run "+path, errMissingFix)
	}
	return stdout.Bytes(), nil
}

// asProblem turns CLI errors that mean "the runtime is unusable" into problems.
func asProblem(err error) error {
	var ce *CLIError
	if !errors.As(err, &ce) {
		return err
	}
	switch ce.Class {
	case ErrAPIServerDown:
		return problem.Wrap(problem.Runtime, err, "the container system service is not running", "run `container system start`")
	case ErrAPIServerHang:
		return problem.Wrap(problem.Timeout, err, "the container system service does not answer", "restart it: `container system stop` then `container system start`")
	case ErrKernelMissing:
		return problem.Wrap(problem.Runtime, err, "the container system has no Linux kernel", "run `container system kernel set --recommended`")
	case ErrUsage:
		// ArgumentParser exits 64 for every usage or validation error, not
		// only for an unknown flag (MessageInfo.swift, ExitCode.validationFailure).
		what := "the container CLI refused the arguments it was given"
		if strings.Contains(strings.ToLower(ce.Stderr), "unknown option") {
			what = "the container CLI rejected a flag"
		}
		return problem.Wrap(problem.Runtime, err, what, "upgrade Apple's container CLI to 1.x; if it persists, report it with this message")
	}
	return err
}

// Version runs `container --version` and refuses CLIs older than MinVersion.
// Only a success is cached: after a failure (the CLI not installed yet, a
// timeout at login) the next call probes again.
func (c *CLI) Version(ctx context.Context) (Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != nil {
		return *c.version, nil
	}
	out, err := c.exec(ctx, c.timeout(), "--version")
	if err != nil {
		return Version{}, asProblem(err)
	}
	v, err := ParseVersion(string(out))
	if err != nil {
		return Version{}, problem.Wrap(problem.Runtime, err, "cannot tell which container CLI this is", errMissingFix)
	}
	if !v.AtLeast(MinVersion.Major, MinVersion.Minor, MinVersion.Patch) {
		return Version{}, problem.Newf(problem.Runtime, "upgrade Apple's container CLI to 1.x (https://github.com/apple/container/releases)",
			"container CLI %s is too old (need %s or newer)", v, MinVersion)
	}
	c.version = &v
	return v, nil
}

// List returns all containers (`ls --all --format json`; filtering is ours,
// since ≤ 0.9 ignored --all in JSON mode).
func (c *CLI) List(ctx context.Context) ([]Container, error) {
	if _, err := c.Version(ctx); err != nil {
		return nil, err
	}
	out, err := c.exec(ctx, c.timeout(), "ls", "--all", "--format", "json")
	if err != nil {
		return nil, asProblem(err)
	}
	cs, err := ParseContainers(out)
	if err != nil {
		return nil, problem.Wrap(problem.Runtime, err, "`container ls --all --format json` printed output we cannot read",
			"upgrade Apple's container CLI; if it persists, report it with the output of that command")
	}
	return cs, nil
}

// Get returns the container with the given ID, or nil when there is none.
func (c *CLI) Get(ctx context.Context, id string) (*Container, error) {
	cs, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range cs {
		if cs[i].ID == id {
			return &cs[i], nil
		}
	}
	return nil, nil
}

// ImageExists reports whether ref is in the local image store.
func (c *CLI) ImageExists(ctx context.Context, ref string) (bool, error) {
	if _, err := c.Version(ctx); err != nil {
		return false, err
	}
	_, err := c.exec(ctx, c.timeout(), "image", "inspect", ref)
	if IsClass(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, asProblem(err)
	}
	return true, nil
}

// ImageLoad loads an OCI-layout tar and returns the references it printed.
func (c *CLI) ImageLoad(ctx context.Context, tar string) ([]string, error) {
	if _, err := c.Version(ctx); err != nil {
		return nil, err
	}
	out, err := c.exec(ctx, ImageLoadTimeout, "image", "load", "-i", tar)
	if err != nil {
		return nil, asProblem(err)
	}
	return parseLoaded(out), nil
}

// ImageList returns the loaded images' references. `image list -q` prints
// them one a line, denormalized ("wrapix-builder:0.1.0", not
// "docker.io/library/…"), sorted, in every version (ImageList.swift).
func (c *CLI) ImageList(ctx context.Context) ([]string, error) {
	if _, err := c.Version(ctx); err != nil {
		return nil, err
	}
	out, err := c.exec(ctx, c.timeout(), "image", "list", "-q")
	if err != nil {
		return nil, asProblem(err)
	}
	var refs []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			refs = append(refs, l)
		}
	}
	return refs, nil
}

// ImageDelete deletes images by reference. No -f: 0.x has none
// (ImageRemove.swift), and the references come from ImageList.
func (c *CLI) ImageDelete(ctx context.Context, refs ...string) error {
	if len(refs) == 0 {
		return nil // the CLI would refuse: "no images specified"
	}
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	if _, err := c.exec(ctx, c.timeout(), append([]string{"image", "delete"}, refs...)...); err != nil {
		return asProblem(err)
	}
	return nil
}

// parseLoaded reads the references `image load` prints, one a line. Before
// 1.0 a "Loaded images:" header comes first (ImageLoad.swift); no reference
// contains a space or ends in ':'.
func parseLoaded(out []byte) []string {
	var refs []string
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.ContainsAny(l, " \t") || strings.HasSuffix(l, ":") {
			continue
		}
		refs = append(refs, l)
	}
	return refs
}

// VolumeEnsure creates the named volume unless it exists, with an ordered
// journal where the CLI supports it (an unjournaled ext4 may not survive a crash).
// Existence comes from the listing (`volume ls -q` prints exact names since
// 0.6): the errors of `volume inspect`/`create` carry the code
// invalidArgument for "not found" and "already exists" alike (XPCServer.swift).
func (c *CLI) VolumeEnsure(ctx context.Context, name string) (created bool, err error) {
	v, err := c.Version(ctx)
	if err != nil {
		return false, err
	}
	exists, err := c.volumeExists(ctx, name)
	if err != nil || exists {
		return false, err
	}
	args := []string{"volume", "create"}
	if v.HasVolumeOpts() {
		args = append(args, "--opt", "journal=ordered")
	}
	args = append(args, name)
	_, err = c.exec(ctx, c.timeout(), args...)
	if err == nil {
		return true, nil
	}
	if exists, lerr := c.volumeExists(ctx, name); lerr == nil && exists { // created meanwhile by someone else
		return false, nil
	}
	return false, asProblem(err)
}

func (c *CLI) volumeExists(ctx context.Context, name string) (bool, error) {
	out, err := c.exec(ctx, c.timeout(), "volume", "ls", "--quiet")
	if err != nil {
		return false, asProblem(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == name {
			return true, nil
		}
	}
	return false, nil
}

// MountSpec is one mount: Source is a named volume (no '/') or an absolute host path.
type MountSpec struct {
	Source, Target string
	ReadOnly       bool
}

// RunSpec describes the builder container.
type RunSpec struct {
	Name        string
	Image       string
	Labels      map[string]string // sorted on output
	HostPort    int               // published on 127.0.0.1 only
	CPUs        int
	MemoryBytes int64
	Mounts      []MountSpec
	Env         []string // K=V
	// FullProc asks for an unmasked /proc (the Nix sandbox mounts its own,
	// which the kernel allows only while no path of /proc is overmounted):
	// `--masked-path NONE --read-only-path NONE` where the CLI has them.
	// No capability is added: the default set is enough (the store volume
	// is mounted at /nix by the runtime, and the sandbox's namespaces are
	// user namespaces).
	FullProc bool
	// Entrypoint replaces the image's entrypoint (one string, not split;
	// the image's CMD is then dropped: Parser.swift processArguments);
	// Args follow the image reference.
	Entrypoint string
	Args       []string
	// Rosetta runs x86_64 binaries in the arm64 guest: containerization
	// mounts Rosetta at /run/rosetta and registers it with binfmt_misc
	// (Vminitd+Rosetta.swift, Binfmt.swift). Only for x86_64-linux builds.
	Rosetta bool
}

// RunArgs renders `container run` arguments for CLI version v.
func RunArgs(v Version, s RunSpec) ([]string, error) {
	args := []string{"run", "--detach", "--name", s.Name}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		args = append(args, "--label", k+"="+s.Labels[k])
	}
	if s.HostPort > 0 {
		// Never the default 0.0.0.0: that would expose the builder's sshd to the LAN.
		args = append(args, "--publish", "127.0.0.1:"+strconv.Itoa(s.HostPort)+":22/tcp")
	}
	args = append(args, "--cpus", strconv.Itoa(s.CPUs), "--memory", MemoryArg(s.MemoryBytes))
	for _, m := range s.Mounts {
		a, err := mountArgs(m)
		if err != nil {
			return nil, err
		}
		args = append(args, a...)
	}
	for _, e := range s.Env {
		args = append(args, "--env", e)
	}
	if s.FullProc && v.HasMaskOptOut() {
		args = append(args, "--masked-path", "NONE", "--read-only-path", "NONE")
	}
	if s.Rosetta {
		if !v.HasRosettaFlag() {
			return nil, problem.Newf(problem.Runtime, "upgrade Apple's container CLI to "+RosettaVersion.String()+" or newer (https://github.com/apple/container/releases), or remove x86_64-linux from systems",
				"x86_64-linux builds need `container run --rosetta`, which container %s does not have", v)
		}
		args = append(args, "--rosetta")
	}
	if v.HasProgressFlag() {
		args = append(args, "--progress", "none")
	}
	if s.Entrypoint != "" {
		args = append(args, "--entrypoint", s.Entrypoint)
	}
	return append(append(args, s.Image), s.Args...), nil
}

func mountArgs(m MountSpec) ([]string, error) {
	isVolume := !strings.Contains(m.Source, "/")
	if !isVolume && !strings.HasPrefix(m.Source, "/") {
		return nil, fmt.Errorf("mount source %q is neither a volume name nor an absolute path", m.Source)
	}
	// -v splits on ':', --mount on ','; pick the one the path survives.
	if !strings.Contains(m.Source, ":") {
		spec := m.Source + ":" + m.Target
		if m.ReadOnly {
			spec += ":ro"
		}
		return []string{"--volume", spec}, nil
	}
	if !strings.Contains(m.Source, ",") {
		typ := "virtiofs"
		if isVolume {
			typ = "volume"
		}
		spec := "type=" + typ + ",source=" + m.Source + ",target=" + m.Target
		if m.ReadOnly {
			spec += ",readonly"
		}
		return []string{"--mount", spec}, nil
	}
	return nil, problem.Newf(problem.Config, "move the data directory (set $XDG_DATA_HOME) to a path without ':' or ','",
		"the path %q contains both ':' and ',', which the container CLI cannot mount", m.Source)
}

// MemoryArg renders bytes with a unit: a bare number would mean bytes.
func MemoryArg(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	default:
		return strconv.FormatInt((n+1023)>>10, 10) + "K"
	}
}

// Run starts the builder container detached. On failure the CLI deletes
// the container it created itself.
func (c *CLI) Run(ctx context.Context, s RunSpec) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	args, err := RunArgs(v, s)
	if err != nil {
		return err
	}
	_, err = c.exec(ctx, 2*c.timeout(), args...)
	if err != nil && !v.RunDeletesFailedContainer() {
		c.deleteFailedRun(ctx, err, s.Name)
	}
	return asProblem(err)
}

// deleteFailedRun removes the container a failed `run` left behind: before
// 0.9 `run` does not delete a container whose start failed
// (ContainerRun.swift), and the stopped leftover would keep the name and the
// store volume. Only a container that is there and not running is removed,
// and never after "already exists" (that container is not ours to delete).
func (c *CLI) deleteFailedRun(ctx context.Context, runErr error, name string) {
	var ce *CLIError
	if !errors.As(runErr, &ce) {
		return // a timeout or no CLI: we cannot tell what exists
	}
	switch ce.Class {
	case ErrAlreadyExists, ErrUsage, ErrAPIServerDown, ErrAPIServerHang:
		return
	}
	ct, err := c.Get(ctx, name)
	if err != nil || ct == nil || ct.Running() {
		return
	}
	_, _ = c.exec(ctx, c.timeout(), "delete", name)
}

// Stop stops the container gracefully: SIGTERM, then SIGKILL after grace. A
// missing container counts as stopped.
func (c *CLI) Stop(ctx context.Context, id string, grace time.Duration) error {
	return c.onContainer(ctx, grace+c.timeout(), gone, "stop", "--time", strconv.Itoa(int(grace/time.Second)), id)
}

// Kill sends SIGKILL; a missing or stopped container counts as killed
// (from 0.10 the CLI fails on a stopped one: "no sandbox client exists:
// container is stopped", ContainersService.swift getClient).
func (c *CLI) Kill(ctx context.Context, id string) error {
	return c.onContainer(ctx, c.timeout(), func(ct *Container) bool { return ct == nil || !ct.Running() }, "kill", id)
}

// Delete removes a stopped container; a missing one counts as deleted.
func (c *CLI) Delete(ctx context.Context, id string) error {
	return c.onContainer(ctx, c.timeout(), gone, "delete", id)
}

func gone(ct *Container) bool { return ct == nil }

// onContainer runs an idempotent lifecycle call: "not found" is success,
// and so is any failure after which the listing shows done(container).
func (c *CLI) onContainer(ctx context.Context, timeout time.Duration, done func(*Container) bool, args ...string) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	_, err := c.exec(ctx, timeout, args...)
	if IsClass(err, ErrNotFound) {
		return nil
	}
	var ce *CLIError
	if errors.As(err, &ce) && ce.Class != ErrUsage && ce.Class != ErrAPIServerDown && ce.Class != ErrAPIServerHang {
		// Not every version says "not found" with a code (0.10's delete
		// prints only "failed to delete one or more containers: [...]"):
		// the listing decides whether the container is gone.
		id := args[len(args)-1]
		if ct, lerr := c.Get(ctx, id); lerr == nil && done(ct) {
			return nil
		}
	}
	return asProblem(err)
}

// Logs copies the container's logs to w; with follow it streams until ctx ends.
func (c *CLI) Logs(ctx context.Context, id string, follow bool, tail int, w io.Writer, errw io.Writer) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	found, err := c.Resolve()
	if err != nil {
		return err
	}
	path := found.Path
	args := []string{"logs"}
	if follow {
		args = append(args, "--follow")
	}
	if tail > 0 {
		args = append(args, "-n", strconv.Itoa(tail))
	}
	args = append(args, id)
	if !follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout())
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, io.MultiWriter(&stderr, errw)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil && follow {
		return nil // the user pressed ^C
	}
	if ctx.Err() == context.DeadlineExceeded {
		return problem.Newf(problem.Timeout, "check `container system status`", "`container %s` did not answer within %s", strings.Join(args, " "), c.timeout())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return asProblem(newCLIError(args, ee.ExitCode(), stderr.String()))
	}
	return err
}
