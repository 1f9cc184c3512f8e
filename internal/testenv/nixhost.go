package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NixHost is the Mac's side of the end-to-end and app tests:
// a scratch /etc that `wrapix-builder setup --root` writes into, read by its
// real consumers (HostCommand), and client Nix stores of their own.
type NixHost struct {
	T    testing.TB
	Root string
	Work string
}

// HostNixConf is the administrator's nix.conf before setup: no substituters
// (no internet here), builds only remotely, no build users.
const HostNixConf = "build-users-group =\nsubstituters =\nmax-jobs = 0\n"

// NewNixHost prepares the scratch /etc and runs setup into it.
func NewNixHost(t testing.TB) *NixHost {
	t.Helper()
	Require(t, "nix-build")
	h := &NixHost{T: t, Root: t.TempDir(), Work: t.TempDir()}
	os.Chmod(h.Work, 0o755)
	HostEtc(t, h.Root, HostNixConf)
	if out, err := exec.Command(filepath.Join(Binaries(t), "wrapix-builder"), "setup", "--root", h.Root).CombinedOutput(); err != nil {
		t.Fatalf("setup --root: %v\n%s", err, out)
	}
	if machines, _ := os.ReadFile(filepath.Join(h.Root, "etc/nix/machines")); !strings.Contains(string(machines), "\nssh-ng://builder@wrapix-builder ") {
		t.Fatalf("setup wrote no builders entry: %q", machines)
	}
	BusyboxDir(t, filepath.Join(h.Work, "bb"))
	return h
}

// Derivation writes a hermetic derivation whose builder runs script with busybox sh.
func (h *NixHost) Derivation(name, script string) string {
	f := filepath.Join(h.Work, name+".nix")
	expr := `let bb = builtins.path { path = ` + filepath.Join(h.Work, "bb") + `; name = "busybox"; }; in
derivation { name = "` + name + `"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
  PATH = "${bb}/bin"; args = [ "-c" ''` + script + `'' ]; }
`
	if err := os.WriteFile(f, []byte(expr), 0o644); err != nil {
		h.T.Fatal(err)
	}
	return f
}

// Build runs nix-build of drv from a client store of its own (client names
// it), with the Mac's /etc as setup left it.
func (h *NixHost) Build(client, drv string, timeout time.Duration) (string, error) {
	cmd := HostCommand(h.T, h.Root, filepath.Join(h.Work, "client-"+client), `exec "$@"`, nil,
		"timeout", strconv.Itoa(int(timeout.Seconds())), "nix-build", drv, "--no-out-link")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
