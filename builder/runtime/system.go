package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// KernelInstallTimeout bounds `system kernel set --recommended`: a ~570 MB
// download on a slow line. Killed, it only leaves the kernel missing, which
// the next start repairs.
const KernelInstallTimeout = 30 * time.Minute

// SystemState is what `container system status` says about the apiserver.
type SystemState int

const (
	// SystemUnregistered: not registered with launchd; `system start` registers it.
	SystemUnregistered SystemState = iota
	// SystemNotResponding: registered, but no answer to the status ping
	// within 10 s: hung or crashing. `system start` cannot fix it (its
	// `launchctl bootstrap` of the registered label fails, ignored, and the
	// ping times out again); `system stop` boots it out.
	SystemNotResponding
	// SystemUp: the apiserver answered.
	SystemUp
)

// System is one reading of `container system status`.
type System struct {
	State SystemState
	// AppRoot is the apiserver's data root as printed (empty when not up,
	// or when the output's shape is unknown).
	AppRoot string
}

// SystemStatus runs `container system status`. Both "down" answers exit 1
// and differ only in the line on stdout (SystemStatus.swift, 0.6.0 … 1.2.2):
// "apiserver is not running and not registered with launchd" when launchd
// has no such label, "apiserver is not running" when it has one that does
// not answer the 10 s ping. Anything else that exits 1 counts as
// unregistered: starting it is the harmless guess.
func (c *CLI) SystemStatus(ctx context.Context) (System, error) {
	if _, err := c.Version(ctx); err != nil {
		return System{}, err
	}
	out, err := c.exec(ctx, c.timeout(), "system", "status")
	var ce *CLIError
	if errors.As(err, &ce) && ce.ExitCode == 1 {
		for _, l := range strings.Split(ce.Stdout, "\n") {
			if strings.TrimSpace(l) == "apiserver is not running" {
				return System{State: SystemNotResponding}, nil
			}
		}
		return System{State: SystemUnregistered}, nil
	}
	if err != nil {
		return System{}, asProblem(err)
	}
	return System{State: SystemUp, AppRoot: parseAppRoot(string(out))}, nil
}

// parseAppRoot reads the data root from `system status`: the table row
// "appRoot <path>" from 0.10, "application data root: <path>" before
// (SystemStatus.swift). The path may contain spaces ("Application Support").
func parseAppRoot(out string) string {
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "application data root:"); ok {
			return strings.TrimSpace(v)
		}
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "appRoot" {
			return strings.TrimSpace(strings.TrimPrefix(l, "appRoot"))
		}
	}
	return ""
}

// DefaultAppRoot is ApplicationRoot.defaultPath: ~/Library/Application
// Support/com.apple.container (ApplicationRoot.swift).
func DefaultAppRoot() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "Library", "Application Support", "com.apple.container")
}

// KernelPath is where the apiserver looks for the default kernel:
// KernelService.swift getDefaultKernel resolves
// <appRoot>/kernels/default.kernel-<arch> and fails with "default kernel not
// configured" when no file is there (0.6.0 … 1.2.2). Always arm64: the CLI
// refuses to run under Rosetta.
func KernelPath(appRoot string) string {
	if appRoot == "" {
		appRoot = DefaultAppRoot()
	}
	return filepath.Join(appRoot, "kernels", "default.kernel-arm64")
}

// KernelInstalled reports whether the default kernel is there. There is no
// CLI command that lists kernels (`system kernel` has only `set`), so the
// file is looked at as the apiserver does (os.Stat follows its symlink).
// A running apiserver has made <appRoot>/kernels (KernelService.init): if
// that is missing too, appRoot is not the one in use (an output shape we
// cannot read) and the answer is yes; `run` would still say otherwise.
func KernelInstalled(appRoot string) bool {
	p := KernelPath(appRoot)
	if _, err := os.Stat(filepath.Dir(p)); err != nil {
		return true
	}
	_, err := os.Stat(p)
	return err == nil
}

// SystemStart starts the container system without any prompt: the kernel
// install is accepted up front and stdin is closed. A first start downloads
// the kernel; progress gets what is known of that download.
func (c *CLI) SystemStart(ctx context.Context, progress func(string)) error {
	v, err := c.Version(ctx)
	if err != nil {
		return err
	}
	args := []string{"system", "start", "--enable-kernel-install"}
	if v.HasSystemTimeout() {
		args = append(args, "--timeout", "120")
	}
	stop := watchKernelDownload(progress)
	_, err = c.exec(ctx, SystemStartTimeout, args...)
	stop()
	if err != nil {
		return problem.Wrap(problem.Runtime, asProblem(err), "cannot start the container system service",
			"run `container system start` in Terminal from a logged-in GUI session and read its error")
	}
	return nil
}

// KernelInstall installs the recommended default kernel:
// `system kernel set --recommended` (KernelSet.swift, from 0.6.0; --force
// overwrites, as SystemStart.swift's own install does).
func (c *CLI) KernelInstall(ctx context.Context, progress func(string)) error {
	if _, err := c.Version(ctx); err != nil {
		return err
	}
	stop := watchKernelDownload(progress)
	_, err := c.exec(ctx, KernelInstallTimeout, "system", "kernel", "set", "--recommended", "--force")
	stop()
	if err != nil {
		return problem.Wrap(problem.Runtime, asProblem(err), "cannot install the container system's Linux kernel",
			"check the network connection, then run `wrapix-builder start` again (or `container system kernel set --recommended` in Terminal)")
	}
	return nil
}

// watchKernelDownload reports a kernel download's progress until stopped.
// The CLI draws its progress bar only on a terminal (TerminalProgress
// ProgressBar: ansi mode needs isatty), and the download is the apiserver's:
// KernelService.swift writes the tarball, as it arrives, to
// <temporary directory>/<uuid>/<name of the URL> (FileDownloader.swift,
// AsyncHTTPClient's FileDownloadDelegate), the temporary directory being the
// user's, as ours is ($TMPDIR). So the size of the newest such file is the
// progress; when there is none, the time waited is.
func watchKernelDownload(progress func(string)) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(finished)
		last := int64(-1)
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			size, ok := kernelDownloadSize(t0)
			elapsed := time.Since(t0).Round(time.Second)
			switch {
			case ok && size != last:
				progress(fmt.Sprintf("downloading the Linux kernel: %d MB of about 570 MB (%s)", size>>20, elapsed))
				last = size
			case !ok && elapsed%(10*time.Second) < 2*time.Second:
				progress(fmt.Sprintf("still installing the Linux kernel (%s)…", elapsed))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// kernelDownloadSize is the size of the newest kata tarball being
// downloaded under the temporary directory since t0.
func kernelDownloadSize(t0 time.Time) (int64, bool) {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), "*", "kata-static-*"))
	var newest os.FileInfo
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || fi.ModTime().Before(t0.Add(-time.Second)) {
			continue
		}
		if newest == nil || fi.ModTime().After(newest.ModTime()) {
			newest = fi
		}
	}
	if newest == nil {
		return 0, false
	}
	return newest.Size(), true
}
