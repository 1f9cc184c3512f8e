package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// HostEtc prepares root (a scratch `setup --root`) as the Mac's /etc before
// setup runs: an /etc/ssh/ssh_config that includes ssh_config.d (as macOS's
// does) and an administrator's /etc/nix/nix.conf with nixConf (settings the
// tests need, e.g. no substituters). Setup then adds its files and blocks.
func HostEtc(t testing.TB, root, nixConf string) {
	t.Helper()
	for path, text := range map[string]string{"etc/ssh/ssh_config": "Include /etc/ssh/ssh_config.d/*\n", "etc/nix/nix.conf": nixConf} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// HostScript is the shell prologue that gives a command the Mac's view of
// what setup wrote: in a private mount namespace, $WRAPIX_ROOT/etc/nix and
// $WRAPIX_ROOT/etc/ssh are bind-mounted over /etc/nix and /etc/ssh, and
// $WRAPIX_CLIENT_NIX over /nix. So Nix reads /etc/nix/nix.conf and, through
// its default `builders = @/etc/nix/machines`, the machines file; ssh reads
// /etc/ssh/ssh_config, whose Include reaches the drop-in; the key and
// known-hosts paths those files name resolve to setup's files. Nothing is
// rewritten, and no builders option is given on the command line.
const HostScript = `set -e
mount --bind "$WRAPIX_ROOT/etc/nix" /etc/nix
mount --bind "$WRAPIX_ROOT/etc/ssh" /etc/ssh
mount --bind "$WRAPIX_CLIENT_NIX" /nix
`

// HostCommand runs script (after HostScript) with sh in a private mount
// namespace; args become $1…; env is added to the environment.
func HostCommand(t testing.TB, root, clientNix, script string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	RequireRoot(t)
	Require(t, "unshare")
	for _, d := range []string{"/etc/nix", "/etc/ssh", "/nix", clientNix} { // mount points
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", HostScript + script, "sh"}, args...)...)
	cmd.Env = append(append(os.Environ(), "WRAPIX_ROOT="+root, "WRAPIX_CLIENT_NIX="+clientNix), env...)
	return cmd
}
