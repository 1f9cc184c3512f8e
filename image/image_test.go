// Package image holds the builder image (image.nix, entrypoint.sh); these
// tests check what can be checked on Linux with Debian's Nix and no nixpkgs.
package image

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

func TestImageNixParses(t *testing.T) {
	if out, err := exec.Command("nix-instantiate", "--parse", "image.nix").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// image.nix evaluated with recording stubs: every assembly step is a host
// (darwin) derivation, Linux packages are only stock allow-listed ones, and
// the recipe strips case-hack names and relocates busybox.
func TestImageIsBuiltOnTheHostOnly(t *testing.T) {
	release := releaseVersion(t)
	out, err := exec.Command("nix-instantiate", "--readonly-mode", "--eval", "--strict", "--json", "--argstr", "version", release, "testdata/stub.nix").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got struct {
		ImageSystem, RootfsSystem, ProfileSystem, SeedSystem string
		SeedRoots                                            []string
		RootfsScript, ImageScript, ImageRef                  string
	}
	if err := json.Unmarshal(out[strings.IndexByte(string(out), '{'):], &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for name, sys := range map[string]string{"image": got.ImageSystem, "rootfs": got.RootfsSystem, "profile": got.ProfileSystem, "closureInfo": got.SeedSystem} {
		if sys != "aarch64-darwin" {
			t.Errorf("%s is built for %s: it would need a Linux builder", name, sys)
		}
	}
	if strings.Join(got.SeedRoots, " ") != "nix openssh coreutils bashInteractive gitMinimal cacert buildEnv" {
		t.Errorf("seed roots %v", got.SeedRoots)
	}
	for _, want := range []string{"--transform=flags=r;s/~nix~case~hack~[0-9][0-9]*//g", "patchelf --set-interpreter /lib/ld-linux-aarch64.so.1", "--format=gnu",
		"-layout.sh $out", "/bin/busybox", "/sbin"} {
		if !strings.Contains(got.RootfsScript, want) {
			t.Errorf("rootfs recipe lacks %q", want)
		}
	}
	// The recipe hands image/layout.sh every input it requires: the same
	// script lays out the e2e stand-in's root (internal/testenv).
	for _, v := range layoutInputs(t) {
		if !strings.Contains(got.RootfsScript, v+"=") {
			t.Errorf("rootfs recipe does not set %s for layout.sh", v)
		}
	}
	for _, want := range []string{`architecture: "arm64"`, "io.containerd.image.name", "application/vnd.oci.image.index.v1+json", "oci-layout"} {
		if !strings.Contains(got.ImageScript, want) {
			t.Errorf("image recipe lacks %q", want)
		}
	}
	// The app bundles this image and its CLI, stamped with the same
	// VERSION, runs it by default (issue 15: one tag per release).
	if want := version.ImageFor(release); got.ImageRef != want {
		t.Errorf("image ref %q is not the one the CLI of version %s runs (%q)", got.ImageRef, release, want)
	}
}

// releaseVersion is the VERSION file, which flake.nix passes to image.nix
// and the Makefile and make-app.sh stamp into the CLI.
func releaseVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// layoutInputs are the variables layout.sh insists on.
func layoutInputs(t *testing.T) []string {
	data, err := os.ReadFile("layout.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "for v in "); ok {
			vars, _, _ := strings.Cut(rest, ";")
			return strings.Fields(vars)
		}
	}
	t.Fatal("layout.sh has no `for v in …` list of its inputs")
	return nil
}

func TestEntrypointIsPOSIXShell(t *testing.T) {
	for _, f := range []string{"entrypoint.sh", "layout.sh", "compact.sh"} {
		if out, err := exec.Command("busybox", "sh", "-n", f).CombinedOutput(); err != nil {
			t.Fatalf("busybox sh -n %s: %v\n%s", f, err, out)
		}
	}
}

func TestFlakeParses(t *testing.T) {
	if out, err := exec.Command("nix-instantiate", "--parse", "../flake.nix").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// sshd's address and the one peer it accepts, as the entrypoint derives them
// from the container's network: its own IPv4 and the default gateway (where
// the runtime's port forwarder connects from). The entrypoint's own block
// runs with busybox's applets in a network namespace shaped like a
// container's on the vmnet subnet.
func TestSSHDAddressFromContainerNetwork(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.Require(t, "unshare", "ip")
	block := entrypointBlock(t, "sshd-address")
	bin := busyboxApplets(t)
	netns := `set -e
ip link set lo up
ip link add eth0 type veth peer name eth1
ip addr add 192.168.64.7/24 dev eth0
ip link set eth0 up
ip route add default via 192.168.64.1
`
	script := `die() { echo "die: $*"; exit 1; }
` + block + `echo "listen=$listen from=$from"`
	cmd := exec.Command("unshare", "--net", "sh", "-c", netns+`exec env -i PATH="$BIN" "$BB" sh -c "$SCRIPT"`)
	cmd.Env = append(os.Environ(), "BIN="+bin, "BB="+testenv.DebianBusybox, "SCRIPT="+script)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "listen=192.168.64.7:22 from=192.168.64.1" {
		t.Fatalf("%v: %q", err, out)
	}
}

// entrypointBlock is the part of entrypoint.sh between "# NAME: begin" and
// "# NAME: end", which a test runs on its own.
func entrypointBlock(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile("entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	begin, end := strings.Index(src, "# "+name+": begin"), strings.Index(src, "# "+name+": end")
	if begin < 0 || end < begin {
		t.Fatalf("entrypoint.sh lacks the %s block markers", name)
	}
	return src[begin:end]
}

// busyboxApplets is a directory of links to Debian's dynamic busybox, one
// per applet: the image's /bin, to put on PATH.
func busyboxApplets(t testing.TB) string {
	t.Helper()
	bin := t.TempDir()
	list, err := exec.Command(testenv.DebianBusybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, a := range strings.Fields(string(list)) {
		os.Symlink(testenv.DebianBusybox, filepath.Join(bin, a))
	}
	return bin
}
