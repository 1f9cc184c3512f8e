package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Image builds, at test time, what the builder image carries in place of its
// aarch64 contents: the project's image/entrypoint.sh and a seed closure made
// by Debian's Nix (/nix-image/store.tar, registration, roots, seed-id). The
// seed holds a static busybox, plus extra files as further store paths
// (name → content) to make an "upgraded" image or a large first copy.
func Image(t testing.TB, extra map[string][]byte) string {
	t.Helper()
	Require(t, "nix-store")
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	seedStore := filepath.Join(dir, "seed-store")
	bb := filepath.Join(dir, "busybox")
	BusyboxDir(t, bb)
	// A tools profile, as the real image has (its bin/ goes on the builder's PATH).
	tools := filepath.Join(dir, "wrapix-tools")
	os.MkdirAll(filepath.Join(tools, "bin"), 0o755)
	os.WriteFile(filepath.Join(tools, "bin", "wrapix-probe"), []byte("#!/bin/sh\necho probe from the seed profile\n"), 0o755)
	inputs := []string{bb, tools}
	for name, content := range extra {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, p)
	}
	nixStore := func(args ...string) string {
		cmd := exec.Command("nix-store", append([]string{"--store", "local?root=" + seedStore}, args...)...)
		cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			t.Fatalf("nix-store %v: %v %s", args, err, msg)
		}
		return string(out)
	}
	roots := strings.Fields(nixStore(append([]string{"--add"}, inputs...)...))
	closure := strings.Fields(nixStore(append([]string{"-qR"}, roots...)...))
	registration := nixStore(append([]string{"--dump-db"}, closure...)...)
	rootfs := filepath.Join(dir, "rootfs")
	seed := filepath.Join(rootfs, "nix-image")
	os.MkdirAll(seed, 0o755)
	tarArgs := []string{"-cf", filepath.Join(seed, "store.tar"), "-C", seedStore}
	for _, p := range closure {
		tarArgs = append(tarArgs, strings.TrimPrefix(p, "/"))
	}
	if out, err := exec.Command("tar", tarArgs...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	sum := sha256.Sum256([]byte(registration))
	files := map[string]string{
		"profile":      roots[1] + "\n",
		"registration": registration,
		"roots":        strings.Join(roots, "\n") + "\n",
		"seed-id":      hex.EncodeToString(sum[:8]) + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(seed, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, self, _, _ := runtime.Caller(0)
	entry, err := os.ReadFile(filepath.Join(filepath.Dir(self), "../../image/entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "entrypoint"), entry, 0o755); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// RequireRoot fails (never skips) a test that needs namespaces and mounts: CI runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this end-to-end test needs root (mount/pid/uts namespaces, pivot_root); run it as root, as CI does")
	}
}

// E2E switches the world's stand-in to end-to-end mode with the given image.
func (w *World) E2E(rootfs string) {
	w.T.Helper()
	RequireRoot(w.T)
	Require(w.T, "sshd", "nix-daemon", "nix-store")
	w.T.Setenv("CONTAINER_STANDIN_MODE", "e2e")
	w.T.Setenv("CONTAINER_STANDIN_ROOTFS", rootfs)
	// No internet here: the builder must not try cache.nixos.org.
	w.T.Setenv("CONTAINER_STANDIN_GUEST_ENV", `["WRAPIX_SUBSTITUTERS="]`)
}

// BusyboxDir makes dir/bin/{busybox,sh} from the host's static busybox: the
// one tool hermetic test derivations run with (busybox needs argv[0] to be
// an applet name, hence the directory).
func BusyboxDir(t testing.TB, dir string) {
	t.Helper()
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("a static busybox is required (apt-get install busybox-static)")
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
}
