package platform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func fakePkexec(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pkexec"), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// pkexec exits 126 when the user dismisses the dialog (polkit's pkexec.c):
// that is a cancel, not a failure; 127 (not authorized) and the command's
// own failures are failures.
func TestPkexecOutcomes(t *testing.T) {
	fakePkexec(t, "exit 126")
	if err := (pkexec{}).Run(t.Context(), []string{"/bin/true"}); err != ErrCancelled {
		t.Errorf("dismissed: %v", err)
	}
	fakePkexec(t, "echo 'Error executing command as another user: Not authorized' >&2; exit 127")
	if err := (pkexec{}).Run(t.Context(), []string{"/bin/true"}); err == nil || errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "Not authorized") {
		t.Errorf("not authorized: %v", err)
	}
	fakePkexec(t, `exec "$@"`)
	if err := (pkexec{}).Run(t.Context(), []string{"/bin/true"}); err != nil {
		t.Errorf("success: %v", err)
	}
}

// A prompt nobody answers is ended after AdminTimeout, with an error saying so.
func TestAdminPromptTimeout(t *testing.T) {
	fakePkexec(t, "exec sleep 600")
	old := AdminTimeout
	AdminTimeout = 300 * time.Millisecond
	t.Cleanup(func() { AdminTimeout = old })
	done := make(chan error, 1)
	go func() { done <- (pkexec{}).Run(context.Background(), []string{"/bin/true"}) }()
	select {
	case err := <-done:
		if err == nil || errors.Is(err, ErrCancelled) || !strings.Contains(err.Error(), "not answered within") {
			t.Errorf("timeout: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the admin prompt has no timeout")
	}
}

// The autostart entry names a command that survives an upgrade: the app's
// name when the PATH finds this very program (a profile's link into the
// store), and its state is read from the entry's content, not its existence.
func TestAutostartStableCommand(t *testing.T) {
	root := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "config"))
	store := filepath.Join(root, "store-v1", "bin")
	profile := filepath.Join(root, "profile", "bin")
	os.MkdirAll(store, 0o755)
	os.MkdirAll(profile, 0o755)
	app := filepath.Join(store, "wrapix-builder-app")
	os.WriteFile(app, []byte("#!/bin/sh\n"), 0o755)
	os.Symlink(app, filepath.Join(profile, "wrapix-builder-app"))
	t.Setenv("PATH", profile+":/usr/bin:/bin")

	a := Autostart{Self: app} // os.Executable() of an app started from the store path
	if a.State().On {
		t.Fatal("on before it was set")
	}
	if err := a.Set(true); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(a.File())
	if !strings.Contains(string(data), "\nExec=\"wrapix-builder-app\"\n") {
		t.Fatalf("entry does not run the stable command:\n%s", data)
	}
	if !a.State().On {
		t.Fatal("set but not on")
	}

	// An upgrade: the old store path goes away, the profile link moves on.
	store2 := filepath.Join(root, "store-v2", "bin")
	os.MkdirAll(store2, 0o755)
	os.WriteFile(filepath.Join(store2, "wrapix-builder-app"), []byte("#!/bin/sh\n"), 0o755)
	os.Remove(filepath.Join(profile, "wrapix-builder-app"))
	os.Symlink(filepath.Join(store2, "wrapix-builder-app"), filepath.Join(profile, "wrapix-builder-app"))
	os.RemoveAll(filepath.Join(root, "store-v1"))
	if !(Autostart{Self: filepath.Join(store2, "wrapix-builder-app")}).State().On {
		t.Fatal("the entry stopped working after an upgrade")
	}

	// An entry that exists but starts nothing is off.
	for name, entry := range map[string]string{
		"gone":     "[Desktop Entry]\nType=Application\nExec=\"" + app + "\"\n",
		"hidden":   "[Desktop Entry]\nType=Application\nExec=\"wrapix-builder-app\"\nHidden=true\n",
		"disabled": "[Desktop Entry]\nType=Application\nExec=wrapix-builder-app\nX-GNOME-Autostart-enabled=false\n",
		"no exec":  "[Desktop Entry]\nType=Application\n",
	} {
		os.WriteFile(a.File(), []byte(entry), 0o644)
		if (Autostart{Self: filepath.Join(store2, "wrapix-builder-app")}).State().On {
			t.Errorf("%s entry reported on", name)
		}
	}

	// Started from the store with another version on the PATH: the PATH's
	// command; with none there, refused with the fix.
	old := nixStore
	nixStore = root + "/"
	t.Cleanup(func() { nixStore = old })
	other := filepath.Join(root, "store-v3", "bin", "wrapix-builder-app")
	os.MkdirAll(filepath.Dir(other), 0o755)
	os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755)
	if err := (Autostart{Self: other}).Set(true); err != nil {
		t.Fatalf("from the store with the app on PATH: %v", err)
	}
	if data, _ := os.ReadFile(a.File()); !strings.Contains(string(data), "\nExec=\"wrapix-builder-app\"\n") {
		t.Fatalf("entry:\n%s", data)
	}
	os.Remove(filepath.Join(profile, "wrapix-builder-app"))
	err := (Autostart{Self: other}).Set(true)
	if err == nil || !strings.Contains(err.Error(), "nix profile install") {
		t.Fatalf("a store path without the app on PATH: %v", err)
	}
	if st := (Autostart{Self: other}).State(); st.On || st.Problem == "" {
		t.Fatalf("state for a store path without the app on PATH: %+v", st)
	}
	nixStore = old

	// Started from a path outside the Nix store that the PATH does not lead to: that path is used.
	if err := (Autostart{Self: filepath.Join(store2, "wrapix-builder-app")}).Set(true); err != nil {
		t.Fatalf("a non-store path is stable enough: %v", err)
	}
	if got := desktopExecProgram(DesktopExec([]string{`/opt/my "app"/bin/a\b $x 100%f`})); got != `/opt/my "app"/bin/a\b $x 100%f` {
		t.Errorf("desktopExecProgram round trip: %q", got)
	}
}
