package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// DebianBusybox is Debian's dynamically linked, non-standalone `busybox`
// package, unpacked by `make deps` (.ci/deps): the honest stand-in for
// nixpkgs' busybox, whose `sh` finds applets only as links on PATH.
// (Debian's busybox-static is standalone and would hide a missing link.)
const DebianBusybox = "/var/cache/wrapix-builder-test/busybox/bin/busybox"

// ImageOptions vary the test image.
type ImageOptions struct {
	Extra    map[string][]byte // further store paths in the seed (name → content): an "upgraded" image, a large first copy
	CABundle string            // PEM file for /etc/ssl/certs/ca-bundle.crt (default: the host's roots)
	// BareBin reproduces the image before defect 1 was fixed: /bin holds
	// only busybox and sh, no applet links.
	BareBin bool
}

// Image builds, at test time, the builder image's root with image/layout.sh
// — the script image.nix runs — from Debian stand-ins for its aarch64
// packages: the non-standalone busybox, and a seed closure made by Debian's
// Nix holding Debian's nix and sshd and the tools profile that puts them on
// PATH. Extra files become further store paths.
func Image(t testing.TB, extra map[string][]byte) string {
	t.Helper()
	return ImageWith(t, ImageOptions{Extra: extra})
}

// ImageWith is Image with options.
func ImageWith(t testing.TB, opts ImageOptions) string {
	t.Helper()
	Require(t, "nix-store")
	dir := t.TempDir()
	rootfs, err := BuildImage(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// BuildImage writes the image root to dir/rootfs (also used by `make demo`).
func BuildImage(dir string, opts ImageOptions) (string, error) {
	os.Chmod(dir, 0o755)
	if _, err := os.Stat(DebianBusybox); err != nil {
		return "", fmt.Errorf("the dynamic busybox from Debian is missing at %s: run `make deps` as root", DebianBusybox)
	}
	seedStore := filepath.Join(dir, "seed-store")
	nixStore := func(args ...string) (string, error) {
		cmd := exec.Command("nix-store", append([]string{"--store", "local?root=" + seedStore}, args...)...)
		cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
		out, err := cmd.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			return "", fmt.Errorf("nix-store %v: %w %s", args, err, msg)
		}
		return strings.TrimSpace(string(out)), nil
	}
	// Debian's Nix (one multi-call binary) and OpenSSH's sshd as store
	// paths, in place of nixpkgs' nix and openssh.
	nixDir := filepath.Join(dir, "nix")
	sshDir := filepath.Join(dir, "openssh")
	if err := copyFile("/usr/bin/nix", filepath.Join(nixDir, "bin/nix"), 0o755); err != nil {
		return "", err
	}
	for _, name := range []string{"nix-daemon", "nix-store", "nix-build", "nix-env", "nix-instantiate", "nix-collect-garbage"} {
		os.Symlink("nix", filepath.Join(nixDir, "bin", name))
	}
	if err := copyFile("/usr/sbin/sshd", filepath.Join(sshDir, "bin/sshd"), 0o755); err != nil {
		return "", err
	}
	var inputs []string
	for _, p := range []string{nixDir, sshDir} {
		sp, err := nixStore("--add", p)
		if err != nil {
			return "", err
		}
		inputs = append(inputs, sp)
	}
	// The tools profile, as the real image has (its bin/ goes on the
	// builder's PATH): links to the tools, and a probe of its own.
	tools := filepath.Join(dir, "wrapix-tools")
	os.MkdirAll(filepath.Join(tools, "bin"), 0o755)
	os.WriteFile(filepath.Join(tools, "bin", "wrapix-probe"), []byte("#!/bin/sh\necho probe from the seed profile\n"), 0o755)
	for _, tool := range inputs {
		entries, _ := os.ReadDir(filepath.Join(seedStore, tool, "bin"))
		for _, e := range entries {
			os.Symlink(filepath.Join(tool, "bin", e.Name()), filepath.Join(tools, "bin", e.Name()))
		}
	}
	profile, err := nixStore("--add", tools)
	if err != nil {
		return "", err
	}
	roots := append(slices.Clone(inputs), profile)
	for _, name := range slices.Sorted(maps.Keys(opts.Extra)) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, opts.Extra[name], 0o644); err != nil {
			return "", err
		}
		sp, err := nixStore("--add", p)
		if err != nil {
			return "", err
		}
		roots = append(roots, sp)
	}
	closureOut, err := nixStore(append([]string{"-qR"}, roots...)...)
	if err != nil {
		return "", err
	}
	closure := strings.Fields(closureOut)
	registration, err := nixStore(append([]string{"--dump-db"}, closure...)...)
	if err != nil {
		return "", err
	}
	registration += "\n"
	sum := sha256.Sum256([]byte(registration))
	applets := ""
	if !opts.BareBin {
		out, err := exec.Command(DebianBusybox, "--list").Output()
		if err != nil {
			return "", fmt.Errorf("busybox --list: %w", err)
		}
		applets = string(out)
	}
	caBundle := opts.CABundle
	if caBundle == "" {
		caBundle = "/etc/ssl/certs/ca-certificates.crt"
	}
	files := map[string]string{
		"applets":      applets,
		"store-paths":  strings.Join(closure, "\n") + "\n",
		"registration": registration,
		"roots":        strings.Join(roots, "\n") + "\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	_, self, _, _ := runtime.Caller(0)
	imageDir := filepath.Join(filepath.Dir(self), "../../image")
	rootfs := filepath.Join(dir, "rootfs")
	cmd := exec.Command("sh", filepath.Join(imageDir, "layout.sh"), rootfs)
	cmd.Env = append(os.Environ(),
		"BUSYBOX="+DebianBusybox, "APPLETS="+filepath.Join(dir, "applets"), "LIBS=",
		"ENTRYPOINT="+filepath.Join(imageDir, "entrypoint.sh"), "COMPACT="+filepath.Join(imageDir, "compact.sh"), "CA_BUNDLE="+caBundle,
		"STORE_ROOT="+seedStore, "STORE_PATHS="+filepath.Join(dir, "store-paths"),
		"REGISTRATION="+filepath.Join(dir, "registration"), "PROFILE="+profile,
		"ROOTS="+filepath.Join(dir, "roots"), "SEED_ID="+hex.EncodeToString(sum[:8]))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("image/layout.sh: %w\n%s", err, out)
	}
	return rootfs, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
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
