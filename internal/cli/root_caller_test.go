package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/lifeline"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// Issue 16 review point 1: as root for a sudo caller, `status` ran the
// container-cli the caller's config.toml names, as uid 0; and the hidden
// `keys root-copy` copied another user's key over any file root owns. Under
// SUDO_UID only setup (and root-copy, for sudo's own user into root's key
// path) runs; nothing the caller names is run.
func TestRootForACallerRunsOnlySetup(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	marker := filepath.Join(t.TempDir(), "ran")
	fake := filepath.Join(t.TempDir(), "container")
	os.WriteFile(fake, []byte("#!/bin/sh\necho \"$(id -u)\" >> "+marker+"\n"), 0o755)
	cfg := filepath.Join(w.ConfigDir, "config.toml")
	old, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, append(old, []byte("\ncontainer-cli = \""+fake+"\"\n")...), 0o644)
	t.Setenv("SUDO_UID", "4242")
	for _, args := range [][]string{{"status"}, {"doctor"}, {"start"}, {"stop"}, {"logs"}, {"keys", "show"}, {"keys", "rotate"}, {"serve"}, {"config"}} {
		oneErrorLine(t, wb(t, args...), 2, "`wrapix-builder "+args[0], "SUDO_UID=4242", "sudo wrapix-builder setup")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran the caller's container-cli")
	}
	if r := wb(t, "--version"); r.code != 0 {
		t.Fatalf("--version under sudo: %s", r.stderr)
	}

	// root-copy: only sudo's user, only root's key path.
	filepath.Walk(w.DataDir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 4242, 4242) })
	victim := filepath.Join(t.TempDir(), "precious.conf")
	os.WriteFile(victim, []byte("root's own\n"), 0o600)
	oneErrorLine(t, wb(t, "keys", "root-copy", "--for-uid", "4343", "--out", victim), 2, "--for-uid 4343", "SUDO_UID 4242")
	oneErrorLine(t, wb(t, "keys", "root-copy", "--for-uid", "4242", "--out", victim), 2, victim, nixconf.RootKeyPath)
	t.Setenv("SUDO_UID", "")
	oneErrorLine(t, wb(t, "keys", "root-copy", "--for-uid", "4242", "--out", victim), 2, victim, nixconf.RootKeyPath)
	if got, _ := os.ReadFile(victim); string(got) != "root's own\n" {
		t.Fatalf("root-copy overwrote %s", victim)
	}
	// A tree the user owns cannot stand for root's.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "etc/nix"), 0o755)
	os.Chown(filepath.Join(tree, "etc/nix"), 4242, 4242)
	oneErrorLine(t, wb(t, "keys", "root-copy", "--for-uid", "4242", "--out", filepath.Join(tree, nixconf.RootKeyPath)), 10, "owned by uid 4242")
	os.Chown(filepath.Join(tree, "etc/nix"), 0, 0)
	t.Setenv("SUDO_UID", "4242")
	if r := wb(t, "keys", "root-copy", "--for-uid", "4242", "--out", filepath.Join(tree, nixconf.RootKeyPath)); r.code != 0 {
		t.Fatalf("root-copy for sudo's user into root's key path: %s", r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(tree, nixconf.RootKeyPath)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root's copy: %v", err)
	}
}

// Issue 16 review point 2: `sudo setup --dry-run` printed the whole of a
// root-only 0600 nix.conf (access tokens) to the caller. As root for a
// caller, a file's existing lines are shown only when that user could read
// it; otherwise only what setup writes into it.
func TestDryRunForACallerHidesWhatTheyCannotRead(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	filepath.Walk(w.DataDir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 4242, 4242) })
	os.Chown(filepath.Join(w.ConfigDir, "config.toml"), 4242, 4242)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/nix"), 0o755)
	conf := filepath.Join(root, "etc/nix/nix.conf")
	os.WriteFile(conf, []byte("access-tokens = github.com=ghp_ROOTSECRET123\n"), 0o600)
	t.Setenv("SUDO_UID", "4242")
	r := wb(t, "setup", "--dry-run", "--root", root)
	if r.code != 0 || strings.Contains(r.stdout, "ROOTSECRET") || !strings.Contains(r.stdout, "(existing contents not shown: not readable by") ||
		!strings.Contains(r.stdout, "+builders-use-substitutes = true") {
		t.Fatalf("dry run for uid 4242 over a root-only nix.conf (exit %d):\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Readable by the caller (every directory above searchable): shown.
	os.Chmod(conf, 0o644)
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // only the test's own directories: /tmp stays as it is
	}
	if r := wb(t, "setup", "--dry-run", "--root", root); !strings.Contains(r.stdout, " access-tokens = github.com=ghp_ROOTSECRET123") {
		t.Fatalf("dry run over a world-readable nix.conf does not show it:\n%s%s", r.stdout, r.stderr)
	}
}

// Issue 16 review point 4: --lifeline was acted on before any check; under
// sudo it is refused, and the admin prompt's socket must be its user's own.
func TestLifelineOnlyTheCallersOwnSocket(t *testing.T) {
	testenv.New(t)
	keysAt(t)
	root := t.TempDir()
	l, err := lifeline.Listen() // root's own (the test runs as root)
	if err != nil {
		t.Fatal(err)
	}
	defer l.StopListening()
	t.Setenv("SUDO_UID", "4242")
	oneErrorLine(t, wb(t, "setup", "--root", root, "--lifeline", l.Path()), 2, "--lifeline", "SUDO_UID")
	t.Setenv("SUDO_UID", "")
	// The admin prompt for uid 4242 with root's socket: refused before connecting.
	oneErrorLine(t, wb(t, "setup", "--root", root, "--for-uid", "4242", "--lifeline", l.Path()), 10, "not a socket of uid 4242")
	select {
	case <-l.Connected():
		t.Fatal("root connected to a socket that is not the user's")
	default:
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a refused setup wrote %v", entries)
	}
}

// Issue 16 review point 8: --container-ip ::ffff:a.b.c.d passed as IPv4.
func TestContainerIPIsADottedQuad(t *testing.T) {
	testenv.New(t)
	keysAt(t)
	for _, ip := range []string{"::ffff:192.168.64.2", "192.168.64.2%en0", "fe80::1", "192.168.064.2x"} {
		oneErrorLine(t, wb(t, "setup", "--dry-run", "--root", t.TempDir(), "--container-ip", ip), 2, "--container-ip", "not an IPv4 address")
	}
	if r := wb(t, "setup", "--dry-run", "--root", t.TempDir(), "--container-ip", "192.168.64.2"); r.code != 0 {
		t.Fatalf("a dotted quad: %s", r.stderr)
	}
}
