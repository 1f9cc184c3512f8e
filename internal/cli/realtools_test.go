package cli

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// startWithSetup starts the builder (stand-in running a real sshd) and
// applies setup into a temporary root prepared as the Mac's /etc (an
// ssh_config that includes ssh_config.d, an administrator's nix.conf).
func startWithSetup(t *testing.T, w *testenv.World) (root string) {
	t.Helper()
	testenv.Require(t, "sshd", "ssh", "nix-build", "nix-daemon")
	testenv.RequireBuilderUser(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	if r := wb(t, "start"); r.code != 0 {
		t.Fatalf("start: %s", r.stderr)
	}
	w.Serve() // the generated config names port, which serve owns
	root = t.TempDir()
	testenv.HostEtc(t, root, "build-users-group =\nsubstituters =\nmax-jobs = 0\n")
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	return root
}

// onHost runs argv with the Mac's view of what setup wrote under root: ssh
// reads /etc/ssh/ssh_config and through its Include the drop-in, Nix reads
// /etc/nix (testenv.HostCommand).
func onHost(t *testing.T, root string, argv ...string) ([]byte, error) {
	t.Helper()
	cmd := testenv.HostCommand(t, root, filepath.Join(t.TempDir(), "nix"), `exec "$@"`, []string{"NIX_SSHOPTS="}, argv...)
	return cmd.CombinedOutput()
}

// Real OpenSSH, configured only by what setup wrote, connects with
// StrictHostKeyChecking yes, and refuses a builder with another host key.
func TestOpenSSHUsesGeneratedConfig(t *testing.T) {
	w := testenv.New(t)
	root := startWithSetup(t, w)
	out, err := onHost(t, root, "ssh", "-o", "BatchMode=yes", "wrapix-builder", "echo connected as $(id -un)")
	if err != nil || strings.TrimSpace(string(out)) != "connected as builder" {
		t.Fatalf("ssh with the generated config: %v\n%s", err, out)
	}
	dropIn := string(mustRead(t, filepath.Join(root, "etc/ssh/ssh_config.d/100-wrapix-builder.conf")))
	if strings.Contains(dropIn, "StrictHostKeyChecking no") || !strings.Contains(dropIn, "StrictHostKeyChecking yes") {
		t.Fatal("the drop-in must pin the host key strictly")
	}
	// Pin another key: ssh must refuse.
	other := filepath.Join(t.TempDir(), "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	pub := mustRead(t, other+".pub")
	kh := filepath.Join(root, "etc/nix/wrapix_builder_known_hosts")
	if err := os.WriteFile(kh, []byte("wrapix-builder "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = onHost(t, root, "ssh", "-o", "BatchMode=yes", "wrapix-builder", "true")
	if err == nil || !strings.Contains(string(out), "Host key verification failed") {
		t.Fatalf("ssh accepted a builder with the wrong host key: %v\n%s", err, out)
	}
	// And a missing known-hosts entry is refused too (no trust on first use).
	os.WriteFile(kh, nil, 0o644)
	out, err = onHost(t, root, "ssh", "-o", "BatchMode=yes", "wrapix-builder", "true")
	if err == nil {
		t.Fatalf("ssh trusted an unknown host key:\n%s", out)
	}
}

// Debian's Nix reads the machines file and nix.conf setup wrote (by its
// defaults, /etc/nix) and builds through the builder over ssh-ng, with only
// the generated ssh_config, key and known hosts.
func TestNixBuildsThroughGeneratedMachinesFile(t *testing.T) {
	w := testenv.New(t)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	root := startWithSetup(t, w)
	// A hermetic derivation: a static busybox imported into the client store.
	bb := filepath.Join(t.TempDir(), "bb")
	testenv.BusyboxDir(t, bb)
	drv := filepath.Join(t.TempDir(), "probe.nix")
	os.WriteFile(drv, []byte(`let bb = builtins.path { path = `+bb+`; name = "bb"; }; in
derivation { name = "wrapix-probe"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
  args = [ "-c" "echo built-by-$(${bb}/bin/busybox id -un)-$RANDOM > $out" ]; }
`), 0o644)
	clientNix := filepath.Join(t.TempDir(), "client")
	cmd := testenv.HostCommand(t, root, clientNix, `exec "$@"`, []string{"NIX_SSHOPTS="}, "timeout", "90", "nix-build", drv, "--no-out-link")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nix-build through the builder: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("not built remotely:\n%s", out)
	}
	outPath := strings.TrimSpace(string(out)[strings.LastIndex(strings.TrimSpace(string(out)), "\n")+1:])
	got := mustRead(t, filepath.Join(clientNix, strings.TrimPrefix(outPath, "/nix")))
	if !strings.HasPrefix(string(got), "built-by-") {
		t.Fatalf("unexpected output %q", got)
	}
	// The same bytes are in the builder's store (the stand-in's volume).
	remote := mustRead(t, filepath.Join(w.StandinDir, "volumes/wrapix-builder-nix/data", outPath))
	if string(remote) != string(got) {
		t.Fatalf("builder has %q, client %q", remote, got)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// `wrapix-builder ssh` with no command on a terminal: a PTY on the builder,
// raw mode locally, the remote exit status passed through. util-linux's
// script(1) provides the terminal.
func TestInteractiveShell(t *testing.T) {
	testenv.Require(t, "sshd", "script")
	testenv.RequireBuilderUser(t)
	testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	if r := wb(t, "start"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	bin := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	cmd := exec.Command("script", "-q", "-e", "-c", bin+" ssh", "/dev/null")
	cmd.Stdin = strings.NewReader("tty; stty size; exit 7\n")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("exit status not passed through: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "24 80") {
		t.Fatalf("no PTY on the builder:\n%s", out)
	}
}

// Not root: setup runs itself again through sudo, passing this user's
// directories explicitly (sudo resets $HOME and the XDG variables).
func TestSetupReexecsThroughSudo(t *testing.T) {
	testenv.Require(t, "setpriv")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	if r := wb(t, "keys", "rotate"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	u, err := user.Lookup("builder")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	filepath.Walk(w.Home, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, uid, gid) })
	os.Chmod(filepath.Dir(w.Home), 0o755)
	fakes := t.TempDir()
	os.Chmod(fakes, 0o755)
	log := filepath.Join(fakes, "sudo.argv")
	os.WriteFile(filepath.Join(fakes, "sudo"), []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" > '"+log+"'\n"), 0o755)
	os.Chmod(filepath.Dir(fakes), 0o755)
	os.WriteFile(log, nil, 0o666)
	os.Chmod(log, 0o666) // the fake sudo runs as the user
	bin := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	os.Chmod(filepath.Dir(bin), 0o755)
	cmd := exec.Command("setpriv", "--reuid="+u.Uid, "--regid="+u.Gid, "--clear-groups", bin, "setup")
	cmd.Env = append(os.Environ(), "PATH="+fakes+":/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setup as a user: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(log)
	got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	want := []string{"--", bin, "setup", "--data-dir", w.DataDir, "--config-dir", w.ConfigDir, "--uri", "alias"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("sudo got %q\nwant %q", got, want)
	}
}
