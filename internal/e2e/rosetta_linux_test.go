package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// qemuAarch64 is Debian's qemu-aarch64-static as `make deps` unpacks it
// (never installed: the package would register it in the host's binfmt_misc).
const qemuAarch64 = "/var/cache/wrapix-builder-test/qemu/usr/bin/qemu-aarch64-static"

// The foreign direction, and why the builder's sandbox needs nothing for
// Rosetta: an aarch64-linux derivation is built on this x86_64 host by Nix
// with sandbox = true, its builder run by qemu-aarch64-static registered in
// binfmt_misc the way containerization registers Rosetta (flags CF,
// Binfmt.swift). The registration lives in a binfmt_misc of the test's own
// user namespace (Linux ≥ 6.7), never the host's. The interpreter's path is
// not in the sandbox: with F (opened at registration) the build works; the
// same registration without F (opened by path at each exec) fails in the
// sandbox, though it runs the binary outside it.
func TestForeignBuildInSandbox(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "nix-build", "mount")
	if _, err := os.Stat(qemuAarch64); err != nil {
		t.Fatalf("%v: run `make deps` as root", err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	// An aarch64 builder: a static Go program that writes its GOARCH to $out.
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module foreign\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte(`package main

import (
	"os"
	"runtime"
)

func main() { os.WriteFile(os.Getenv("out"), []byte(runtime.GOARCH+"\n"), 0o644) }
`), 0o644)
	bin := filepath.Join(dir, "builder-arm64")
	gb := exec.Command("go", "build", "-o", bin, ".")
	gb.Dir = src
	gb.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := gb.CombinedOutput(); err != nil {
		t.Fatalf("building the aarch64 builder: %v\n%s", err, out)
	}
	drv := filepath.Join(dir, "foreign.nix")
	os.WriteFile(drv, []byte(`derivation { name = "foreign"; system = "aarch64-linux";
  builder = builtins.path { path = `+bin+`; name = "builder-arm64"; }; }
`), 0o644)

	// The magic and mask are those of qemu's own binfmt table for aarch64.
	const magic = `\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00`
	const mask = `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`
	script := `set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
printf '%s' ":wrapix-aarch64:M::` + magic + `:` + mask + `:` + qemuAarch64 + `:$1" > /proc/sys/fs/binfmt_misc/register
out=$2/direct "$3" && [ "$(cat "$2/direct")" = arm64 ] || { echo "the emulator does not run the binary outside the sandbox"; exit 3; }
export NIX_CONFIG="build-users-group =
sandbox = true
sandbox-fallback = false
extra-platforms = aarch64-linux
substituters =
experimental-features = nix-command"
exec nix-build --store "$2/root" --no-out-link "$4"
`
	build := func(flags string) (string, string, error) {
		work := filepath.Join(dir, flags)
		os.MkdirAll(work, 0o755)
		cmd := exec.Command("timeout", "300", "sh", "-c", script, "sh", flags, work, bin, drv)
		// Root of a user namespace of its own (uids mapped 1:1, so the Nix
		// sandbox can map its build user) and its own mounts (the same PIDs: Nix
		// writes its sandbox's uid_map through this /proc).
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
			GidMappingsEnableSetgroups: true,
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), "", err
		}
		got, err := os.ReadFile(filepath.Join(work, "root", strings.TrimPrefix(outPath(string(out)), "/")))
		return string(out), string(got), err
	}
	out, got, err := build("CF")
	if err != nil || got != "arm64\n" {
		t.Fatalf("aarch64-linux in the sandbox with flags CF: %v %q\n%s", err, got, out)
	}
	out, _, err = build("C")
	// The kernel opens the interpreter by its path, which the sandbox lacks.
	if err == nil || !strings.Contains(out, "No such file or directory") {
		t.Fatalf("without F the sandbox cannot reach the interpreter, yet: %v\n%s", err, out)
	}
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/wrapix-aarch64"); err == nil {
		t.Fatal("the registration leaked into the host's binfmt_misc")
	}
}
