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
