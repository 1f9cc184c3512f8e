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

// NixHost is the Mac's side for tests outside internal/e2e: the trust that
// `setup --root` writes, and a client Nix with its own /nix and
// max-jobs = 0 that builds through the builder with only that configuration.
type NixHost struct {
	T         testing.TB
	Work      string
	sshConfig string
	machines  string
}

// NewNixHost runs `wrapix-builder setup --root` into a temporary root.
func NewNixHost(t testing.TB) *NixHost {
	t.Helper()
	Require(t, "unshare", "nix-build")
	root, work := t.TempDir(), t.TempDir()
	os.Chmod(work, 0o755)
	if out, err := exec.Command(filepath.Join(Binaries(t), "wrapix-builder"), "setup", "--root", root).CombinedOutput(); err != nil {
		t.Fatalf("setup --root: %v\n%s", err, out)
	}
	nixDir := filepath.Join(root, "etc/nix") + "/"
	dropIn, err := os.ReadFile(filepath.Join(root, "etc/ssh/ssh_config.d/100-wrapix-builder.conf"))
	if err != nil {
		t.Fatal(err)
	}
	h := &NixHost{T: t, Work: work, sshConfig: filepath.Join(work, "ssh_config")}
	os.WriteFile(h.sshConfig, []byte(strings.ReplaceAll(string(dropIn), "/etc/nix/", nixDir)), 0o644)
	machines, _ := os.ReadFile(filepath.Join(root, "etc/nix/machines"))
	for _, l := range strings.Split(string(machines), "\n") {
		if strings.HasPrefix(l, "ssh-ng://") {
			h.machines = strings.ReplaceAll(l, "/etc/nix/", nixDir)
		}
	}
	if h.machines == "" {
		t.Fatalf("setup wrote no builders entry: %q", machines)
	}
	BusyboxDir(t, filepath.Join(work, "bb"))
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

// Build runs nix-build of drv through the builder from a client store of
// its own (client names it), in a private mount namespace.
func (h *NixHost) Build(client, drv string, timeout time.Duration) (string, error) {
	clientNix := filepath.Join(h.Work, "client-"+client)
	os.MkdirAll(clientNix, 0o755)
	os.MkdirAll("/nix", 0o755)
	script := `mount --bind "$1" /nix && shift && exec "$@"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh", clientNix,
		"timeout", strconv.Itoa(int(timeout.Seconds())), "nix-build", drv, "--no-out-link", "--max-jobs", "0",
		"--option", "build-users-group", "", "--option", "substituters", "", "--option", "builders-use-substitutes", "false",
		"--builders", h.machines)
	cmd.Env = append(os.Environ(), "NIX_SSHOPTS=-F "+h.sshConfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
