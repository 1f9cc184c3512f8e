package toolpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeExe(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// launchd's PATH lacks the tool: the well-known places are searched in
// order, with ~ and $USER expanded; PATH wins when it has the tool.
func TestFindOnPathThenWellKnownPlaces(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("USER", "alice")
	sys := t.TempDir()
	t.Setenv("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
	tool := Tool{Name: "wrapix-test-tool", Places: []string{filepath.Join(sys, "first"), "~/.nix-profile/bin", filepath.Join(sys, "per-user/$USER/bin")}}

	_, err := tool.Find()
	var nf *NotFoundError
	if !errors.As(err, &nf) {
		t.Fatalf("nothing installed: %v", err)
	}
	for _, want := range []string{"/usr/bin:/bin:/usr/sbin:/sbin", filepath.Join(sys, "first"), filepath.Join(home, ".nix-profile/bin"), filepath.Join(sys, "per-user/alice/bin")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not name %s", err, want)
		}
	}

	writeExe(t, filepath.Join(sys, "per-user/alice/bin/wrapix-test-tool"))
	if f, err := tool.Find(); err != nil || f.Path != filepath.Join(sys, "per-user/alice/bin/wrapix-test-tool") || f.Source != FromWellKnown {
		t.Fatalf("per-user: %+v %v", f, err)
	}
	writeExe(t, filepath.Join(home, ".nix-profile/bin/wrapix-test-tool"))
	if f, _ := tool.Find(); f.Path != filepath.Join(home, ".nix-profile/bin/wrapix-test-tool") {
		t.Fatalf("order: %+v", f)
	}
	// A file without an execute bit or a directory does not count.
	os.MkdirAll(filepath.Join(sys, "first", "wrapix-test-tool"), 0o755)
	if f, _ := tool.Find(); f.Path != filepath.Join(home, ".nix-profile/bin/wrapix-test-tool") {
		t.Fatalf("a directory was taken for the tool: %+v", f)
	}
	onPath := t.TempDir()
	writeExe(t, filepath.Join(onPath, "wrapix-test-tool"))
	t.Setenv("PATH", onPath+":/usr/bin")
	if f, err := tool.Find(); err != nil || f.Path != filepath.Join(onPath, "wrapix-test-tool") || f.Source != FromPATH {
		t.Fatalf("PATH first: %+v %v", f, err)
	}
}

// The lists are where the installers put the tools.
func TestWellKnownPlaces(t *testing.T) {
	if Container.Places[0] != "/usr/local/bin" {
		t.Errorf("Apple's pkg installs into /usr/local/bin: %v", Container.Places)
	}
	for _, want := range []string{"/nix/var/nix/profiles/default/bin", "/run/current-system/sw/bin", "~/.nix-profile/bin", "/etc/profiles/per-user/$USER/bin"} {
		found := false
		for _, p := range Nix.Places {
			found = found || p == want
		}
		if !found {
			t.Errorf("Nix places lack %s", want)
		}
	}
}

// Issue 16 point 5: as root (setup --uri port runs `nix --version`), a
// program is taken only from a place only root can change: one in a
// directory another user owns, on $PATH or in ~/.nix-profile/bin, or
// reached through their link, is passed over, and the error says so.
func TestRootRunsOnlyRootsPrograms(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	home := t.TempDir()
	os.Chmod(home, 0o755)
	t.Setenv("HOME", home)
	users := filepath.Join(home, "users-bin")
	writeExe(t, filepath.Join(users, "wrapix-test-tool"))
	os.Chown(users, 4242, 4242)
	linked := filepath.Join(home, "linked")
	os.Symlink(users, linked)
	os.Lchown(linked, 4242, 4242)
	profile := filepath.Join(home, ".nix-profile/bin")
	writeExe(t, filepath.Join(profile, "wrapix-test-tool"))
	os.Chown(filepath.Dir(profile), 4242, 4242)
	roots := filepath.Join(t.TempDir(), "bin")
	writeExe(t, filepath.Join(roots, "wrapix-test-tool"))
	tool := Tool{Name: "wrapix-test-tool", Places: []string{"~/.nix-profile/bin", roots}}

	t.Setenv("PATH", users+":"+linked+":/usr/bin")
	got, err := tool.Find()
	if err != nil || got.Path != filepath.Join(roots, "wrapix-test-tool") {
		t.Fatalf("Find as root = %+v, %v; want root's %s", got, err, roots)
	}
	tool.Places = tool.Places[:1]
	_, err = tool.Find()
	var nf *NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), filepath.Join(users, "wrapix-test-tool")) ||
		!strings.Contains(err.Error(), "owned by uid 4242") || !strings.Contains(err.Error(), filepath.Join(profile, "wrapix-test-tool")) {
		t.Fatalf("only the user's programs: %v", err)
	}
}

// Issue 16 review point 5: a hard link to a root-owned program planted in a
// root-owned sticky directory (/tmp) passed as root's program, and with that
// directory first on $PATH root ran it. As root, a program directly in a
// sticky directory everyone may write to, or hard-linked in any sticky
// directory, is passed over; root's own directory under /tmp still counts.
func TestRootRefusesAProgramPlantedInAStickyDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	base := t.TempDir() // root's, under the sticky /tmp
	os.Chmod(base, 0o755)
	roots := filepath.Join(base, "bin")
	writeExe(t, filepath.Join(roots, "wrapix-test-tool"))
	tmp := filepath.Join(base, "tmp")
	os.Mkdir(tmp, 0o755)
	os.Chmod(tmp, os.ModeSticky|0o777)
	if err := os.Link(filepath.Join(roots, "wrapix-test-tool"), filepath.Join(tmp, "wrapix-test-tool")); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(base, "store") // like /nix/store: sticky, group-writable
	os.Mkdir(store, 0o755)
	os.Chmod(store, os.ModeSticky|0o775)
	os.Link(filepath.Join(roots, "wrapix-test-tool"), filepath.Join(store, "wrapix-test-tool"))
	tool := Tool{Name: "wrapix-test-tool", Places: []string{roots}}
	for _, dir := range []string{tmp, store} {
		t.Setenv("PATH", dir+":/usr/bin")
		got, err := tool.Find()
		if err != nil || got.Path != filepath.Join(roots, "wrapix-test-tool") {
			t.Errorf("PATH=%s: Find as root = %+v, %v; want root's %s", dir, got, err, roots)
		}
	}
	// A file of its own directly in the world-writable sticky directory.
	os.Remove(filepath.Join(tmp, "wrapix-test-tool"))
	writeExe(t, filepath.Join(tmp, "wrapix-test-tool"))
	t.Setenv("PATH", tmp+":/usr/bin")
	if got, _ := tool.Find(); got.Path != filepath.Join(roots, "wrapix-test-tool") {
		t.Errorf("a program directly in a world-writable sticky directory: %+v", got)
	}
	// FindFixed never looks at $PATH.
	if got, err := (Tool{Name: "wrapix-test-tool", Places: []string{"/nonexistent"}}).FindFixed(); err == nil {
		t.Errorf("FindFixed found %+v", got)
	}
}
