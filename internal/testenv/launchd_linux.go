//go:build linux

package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// LaunchdPATH is the PATH macOS gives apps started from Finder and launch
// agents (launchd's default user PATH).
const LaunchdPATH = "/usr/bin:/bin:/usr/sbin:/sbin"

// WellKnownBin is where Apple's installer puts the container CLI: a
// well-known place that launchd's PATH does not contain.
const WellKnownBin = "/usr/local/bin"

// LaunchdCommand runs argv the way launchd starts an app or agent: a bare
// environment (`env -i`) with launchd's PATH, HOME and USER, plus extra (for
// example the D-Bus address the Linux tray needs). It runs in a private mount
// namespace where dir is bind-mounted over WellKnownBin, so the host's
// /usr/local/bin is untouched and whatever the test puts into dir — now or
// later — shows at the well-known path. Needs root.
func LaunchdCommand(t testing.TB, dir, home string, extra []string, argv ...string) *exec.Cmd {
	t.Helper()
	RequireRoot(t)
	if fi, err := os.Stat(WellKnownBin); err != nil || !fi.IsDir() {
		t.Fatalf("%s must exist to be covered by a private bind mount: %v", WellKnownBin, err)
	}
	env := append([]string{"PATH=" + LaunchdPATH, "HOME=" + home, "USER=" + os.Getenv("USER"), "LOGNAME=" + os.Getenv("USER")}, extra...)
	// $1 is dir, then env(1)'s arguments; env -i drops everything else.
	script := `mount --bind "$1" ` + WellKnownBin + ` && shift && exec /usr/bin/env -i "$@"`
	args := append([]string{"-c", script, "sh", dir}, env...)
	cmd := exec.Command("/bin/sh", append(args, argv...)...)
	// Go makes the new namespace's mounts private (MS_REC|MS_PRIVATE on /)
	// before exec, so the bind mount never propagates to the host.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	return cmd
}

// LaunchdHome is a home directory for LaunchdCommand: no XDG variables, so
// the config is ~/.config/wrapix/config.toml, naming the world's port.
func (w *World) LaunchdHome() string {
	w.T.Helper()
	home := filepath.Join(w.Home, "launchd-home")
	cfgDir := filepath.Join(home, ".config", "wrapix")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		w.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "config.toml"), []byte("port = "+strconv.Itoa(w.Port)+"\n"), 0o644); err != nil {
		w.T.Fatal(err)
	}
	return home
}

// InstallStandin puts the container stand-in into dir as `container`: a
// wrapper that carries the stand-in's own settings (state directory, mode,
// version), which a launchd environment would not pass on.
func (w *World) InstallStandin(dir string) {
	w.T.Helper()
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONTAINER_STANDIN_") {
			k, v, _ := strings.Cut(kv, "=")
			b.WriteString("export " + k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'\n")
		}
	}
	b.WriteString("export PATH='" + os.Getenv("PATH") + "'\n") // the stand-in's own tools (sshd)
	b.WriteString("exec '" + filepath.Join(Binaries(w.T), "container") + "' \"$@\"\n")
	tmp := filepath.Join(dir, ".container.tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o755); err != nil {
		w.T.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "container")); err != nil { // appears at once, complete
		w.T.Fatal(err)
	}
}
