package lifecycle

import (
	"os"
	"path/filepath"
	"testing"
)

// 17.4: the CLI and the app in a bundle find the bundle's image archive from
// their own path, through symlinks (a cask's or profile's bin link), and
// refuse one that someone else could have written.
func TestBundledImageArchive(t *testing.T) {
	root := t.TempDir()
	contents := filepath.Join(root, "Wrapix Builder.app", "Contents")
	exe := filepath.Join(contents, "MacOS", "wrapix-builder")
	archive := filepath.Join(contents, "Resources", BundledImageName)
	for _, d := range []string{filepath.Dir(exe), filepath.Dir(archive), filepath.Join(root, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "bin", "wrapix-builder")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	check := func(what, exe, want string) {
		t.Helper()
		if got := BundledImageArchive(exe); got != want {
			t.Errorf("%s: BundledImageArchive(%s) = %q, want %q", what, exe, got, want)
		}
	}

	check("no archive in the bundle", exe, "")
	if err := os.WriteFile(archive, []byte("tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	check("the bundle's archive", exe, archive)
	check("through a symlinked executable", link, archive)
	check("not in a bundle", filepath.Join(root, "bin", "other"), "")
	loose := filepath.Join(root, "MacOS", "wrapix-builder") // MacOS without Contents
	if err := os.MkdirAll(filepath.Dir(loose), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	check("MacOS outside Contents", loose, "")

	for _, mode := range []os.FileMode{0o666, 0o664} {
		if err := os.Chmod(archive, mode); err != nil {
			t.Fatal(err)
		}
		check("archive mode "+mode.String(), exe, "")
	}
	if err := os.Chmod(archive, 0o444); err != nil {
		t.Fatal(err)
	}
	check("read-only archive (the Nix store's)", exe, archive)

	// A symlinked archive counts as its target (the flake could link it);
	// a dangling one or a directory does not.
	target := filepath.Join(root, "image.tar")
	if err := os.Rename(archive, target); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, archive); err != nil {
		t.Fatal(err)
	}
	check("symlinked archive", exe, target)
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	check("dangling archive link", exe, "")
	if err := os.Remove(archive); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	check("a directory", exe, "")
	if err := os.Remove(archive); err != nil {
		t.Fatal(err)
	}

	// Owned by another user: refused (only root can make one here).
	if os.Geteuid() == 0 {
		if err := os.WriteFile(archive, []byte("tar"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(archive, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		check("owned by nobody", exe, "")
	}
}
