// Package runtime drives Apple's `container` CLI: it detects the version and
// gates flags on it, reads both JSON generations, classifies errors by
// substring and puts a deadline on every call. It never relies on
// `delete --force` to stop anything.
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// Timeouts for CLI calls. Every call has one: stop and exec are known to hang.
const (
	DefaultTimeout     = 30 * time.Second
	SystemStartTimeout = 10 * time.Minute // first start downloads a kernel
	ImageLoadTimeout   = 10 * time.Minute
)

// CLI is the container CLI at Path.
type CLI struct {
	Path    string        // "container" or an absolute path
	Timeout time.Duration // per call; DefaultTimeout when zero

	once    sync.Once
	version Version
	verErr  error
}

// New returns the CLI found as name on $PATH (or at an absolute path).
func New(name string) *CLI { return &CLI{Path: name} }

func (c *CLI) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

var errMissingFix = "install Apple's container CLI (1.x) from https://github.com/apple/container/releases, then run `container system start`"

// exec runs the CLI with a deadline and stdin closed (so a prompt can never
// wait for us), returning stdout. A non-zero exit is a *CLIError.
func (c *CLI) exec(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	path, err := exec.LookPath(c.Path)
	if err != nil {
		return nil, problem.Wrap(problem.Runtime, err, "Apple's `container` CLI was not found", errMissingFix)
	}
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
			return stdout.Bytes(), newCLIError(args, ee.ExitCode(), stderr.String())
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
	case ErrUnknownFlag:
		return problem.Wrap(problem.Runtime, err, "the container CLI rejected a flag", "upgrade Apple's container CLI to 1.x")
	}
	return err
}

// Version runs `container --version` once per CLI and refuses CLIs older than MinVersion.
func (c *CLI) Version(ctx context.Context) (Version, error) {
	c.once.Do(func() {
		out, err := c.exec(ctx, c.timeout(), "--version")
		if err != nil {
			c.verErr = asProblem(err)
			return
		}
		v, err := ParseVersion(string(out))
		if err != nil {
			c.verErr = problem.Wrap(problem.Runtime, err, "cannot tell which container CLI this is", errMissingFix)
			return
		}
		if !v.AtLeast(MinVersion.Major, MinVersion.Minor, MinVersion.Patch) {
			c.verErr = problem.Newf(problem.Runtime, "upgrade Apple's container CLI to 1.x (https://github.com/apple/container/releases)",
				"container CLI %s is too old (need %s or newer)", v, MinVersion)
			return
		}
		c.version = v
	})
	return c.version, c.verErr
}

// SystemRunning asks `container system status`; only its exit code counts
// (the JSON shape changed in 1.4.1).
func (c *CLI) SystemRunning(ctx context.Context) (bool, error) {
	if _, err := c.Version(ctx); err != nil {
		return false, err
	}
	_, err := c.exec(ctx, c.timeout(), "system", "status")
	var ce *CLIError
	if errors.As(err, &ce) && ce.ExitCode == 1 {
		return false, nil
	}
	if err != nil {
		return false, asProblem(err)
	}
	return true, nil
}

// SystemStart starts the container system without any prompt: the kernel
// install is accepted up front and stdin is closed.
func (c *CLI) SystemStart(ctx context.Context) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	args := []string{"system", "start", "--enable-kernel-install"}
	if v.HasSystemTimeout() {
		args = append(args, "--timeout", "120")
	}
	if _, err := c.exec(ctx, SystemStartTimeout, args...); err != nil {
		return problem.Wrap(problem.Runtime, asProblem(err), "cannot start the container system service",
			"run `container system start` in Terminal from a logged-in GUI session and read its error")
	}
	return nil
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
	var refs []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			refs = append(refs, l)
		}
	}
	return refs, nil
}

// VolumeEnsure creates the named volume unless it exists, with an ordered
// journal where the CLI supports it (an unjournaled ext4 may not survive a crash).
func (c *CLI) VolumeEnsure(ctx context.Context, name string) (created bool, err error) {
	v, err := c.Version(ctx)
	if err != nil {
		return false, err
	}
	_, err = c.exec(ctx, c.timeout(), "volume", "inspect", name)
	if err == nil {
		return false, nil
	}
	if !IsClass(err, ErrNotFound) {
		return false, asProblem(err)
	}
	args := []string{"volume", "create"}
	if v.HasVolumeOpts() {
		args = append(args, "--opt", "journal=ordered")
	}
	args = append(args, name)
	_, err = c.exec(ctx, c.timeout(), args...)
	if IsClass(err, ErrAlreadyExists) { // created meanwhile by someone else
		return false, nil
	}
	if err != nil {
		return false, asProblem(err)
	}
	return true, nil
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
	SysAdmin    bool     // the Nix sandbox needs CAP_SYS_ADMIN
}

// RunArgs renders `container run` arguments for CLI version v.
func RunArgs(v Version, s RunSpec) ([]string, error) {
	args := []string{"run", "--detach", "--name", s.Name}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		args = append(args, "--label", k+"="+s.Labels[k])
	}
	// Never the default 0.0.0.0: that would expose the builder's sshd to the LAN.
	args = append(args, "--publish", "127.0.0.1:"+strconv.Itoa(s.HostPort)+":22/tcp")
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
	if s.SysAdmin && v.HasCapAdd() {
		args = append(args, "--cap-add", "SYS_ADMIN")
	}
	if v.HasProgressFlag() {
		args = append(args, "--progress", "none")
	}
	return append(args, s.Image), nil
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
	return asProblem(err)
}

// Stop stops the container gracefully: SIGTERM, then SIGKILL after grace. A
// missing container counts as stopped.
func (c *CLI) Stop(ctx context.Context, id string, grace time.Duration) error {
	return c.onContainer(ctx, grace+c.timeout(), "stop", "--time", strconv.Itoa(int(grace/time.Second)), id)
}

// Kill sends SIGKILL; a missing container counts as killed.
func (c *CLI) Kill(ctx context.Context, id string) error {
	return c.onContainer(ctx, c.timeout(), "kill", id)
}

// Delete removes a stopped container; a missing one counts as deleted.
func (c *CLI) Delete(ctx context.Context, id string) error {
	return c.onContainer(ctx, c.timeout(), "delete", id)
}

// onContainer runs an idempotent lifecycle call: "not found" is success.
func (c *CLI) onContainer(ctx context.Context, timeout time.Duration, args ...string) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	_, err := c.exec(ctx, timeout, args...)
	if IsClass(err, ErrNotFound) {
		return nil
	}
	return asProblem(err)
}

// Logs copies the container's logs to w; with follow it streams until ctx ends.
func (c *CLI) Logs(ctx context.Context, id string, follow bool, tail int, w io.Writer, errw io.Writer) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	path, err := exec.LookPath(c.Path)
	if err != nil {
		return problem.Wrap(problem.Runtime, err, "Apple's `container` CLI was not found", errMissingFix)
	}
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
