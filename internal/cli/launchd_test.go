//go:build linux

package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// The CLI as launchd runs it (a login agent, or the app's child): launchd's
// PATH, which lacks /usr/local/bin, and Apple's container CLI installed there.
func TestCLIFindsContainerOutsideLaunchdPATH(t *testing.T) {
	w := testenv.New(t)
	home := w.LaunchdHome() // no XDG variables: ~/.config and ~/.local/share
	wb := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	wellKnown := t.TempDir()

	run := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := testenv.LaunchdCommand(t, wellKnown, home, nil, append([]string{wb}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		return out.String(), errb.String(), code
	}

	// Nothing installed: the error names where it looked and the fix.
	_, stderr, code := run("start")
	if code != 4 {
		t.Fatalf("start without a CLI: exit %d: %s", code, stderr)
	}
	for _, want := range []string{testenv.LaunchdPATH, "/usr/local/bin", "/opt/homebrew/bin", "container-cli"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the error does not name %q: %s", want, stderr)
		}
	}

	w.InstallStandin(wellKnown)
	out, stderr, code := run("status")
	if code != 6 || !strings.Contains(out, "stopped") {
		t.Fatalf("status with the CLI in /usr/local/bin: exit %d\n%s\n%s", code, out, stderr)
	}
	out, _, _ = run("doctor")
	if !strings.Contains(out, "at /usr/local/bin/container (found in a well-known place") {
		t.Errorf("doctor does not say which container CLI it uses:\n%s", out)
	}
}
