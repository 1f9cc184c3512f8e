package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/setup"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// sshG resolves host with real ssh through an ssh_config that reaches
// root's drop-in only by `Include`, as /etc/ssh/ssh_config does on a Mac.
// include=false: the same ssh_config without it, for comparison.
func sshG(t *testing.T, root, host string, include bool) map[string]string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "ssh_config")
	text := "Host *\n  SendEnv LANG\n"
	if include {
		text = "Include " + filepath.Join(root, "etc/ssh/ssh_config.d") + "/*\n" + text
	}
	os.WriteFile(cfg, []byte(text), 0o644)
	out, err := exec.Command("ssh", "-G", "-F", cfg, host).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G %s: %v\n%s", host, err, out)
	}
	opts := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			opts[k] = strings.TrimSpace(opts[k] + "\n" + v)
		}
	}
	return opts
}

// checkRootFiles reads every file setup wrote under root with its real
// consumer and asserts it means exactly what setup intends: ssh sees only the
// builder's settings for the alias and nothing for other hosts; Nix reads
// nix.conf and the machines file (through its default builders =
// @$NIX_CONF_DIR/machines) and finds exactly our builder; no file holds a
// line outside what nixconf renders, nor any control character.
func checkRootFiles(t *testing.T, w *testenv.World, root string) {
	t.Helper()
	want := sshG(t, root, "wrapix-builder", true)
	for k, v := range map[string]string{"hostname": "127.0.0.1", "user": "builder", "hostkeyalias": "wrapix-builder",
		"identityfile": nixconf.RootKeyPath, "globalknownhostsfile": nixconf.KnownHostsPath, "userknownhostsfile": "/dev/null",
		"stricthostkeychecking": "true", "proxycommand": "", "include": ""} {
		if want[k] != v {
			t.Errorf("ssh -G wrapix-builder: %s = %q, want %q", k, want[k], v)
		}
	}
	for _, host := range []string{"localhost", "example.com"} {
		plain, with := sshG(t, root, host, false), sshG(t, root, host, true)
		for k, v := range with {
			if plain[k] != v {
				t.Errorf("the drop-in changes `ssh %s`: %s = %q (without it %q)", host, k, v, plain[k])
			}
		}
	}
	// Every line of the drop-in, known hosts and machines file is one nixconf renders for these keys.
	ksPub, _ := os.ReadFile(filepath.Join(w.DataDir, "builder-keys", "host_ed25519.pub"))
	hostKey := strings.Join(strings.Fields(string(ksPub))[:2], " ")
	allowed := map[string]bool{"": true}
	p := nixconf.Params{User: "builder", Port: w.NixPort, HostKey: hostKey}
	for _, l := range strings.Split(nixconf.SSHConfig(p)+nixconf.KnownHosts(p), "\n") {
		allowed[l] = true
	}
	for _, f := range []string{nixconf.SSHConfigPath, nixconf.KnownHostsPath, nixconf.MachinesPath, "/etc/nix/nix.conf"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range string(data) {
			if r != '\n' && !unicode.IsPrint(r) {
				t.Errorf("%s holds the control character %q", f, r)
			}
		}
		for _, l := range strings.Split(string(data), "\n") {
			switch {
			case f == nixconf.SSHConfigPath || f == nixconf.KnownHostsPath:
				if !allowed[l] {
					t.Errorf("%s holds a line setup does not write: %q", f, l)
				}
			case strings.HasPrefix(l, "#") || l == "" || l == "builders-use-substitutes = true" || l == "trusted-users = root":
			case f == nixconf.MachinesPath && strings.HasPrefix(l, "ssh-ng://builder@wrapix-builder "+"aarch64-linux"+" "+nixconf.RootKeyPath+" "):
			default:
				t.Errorf("%s holds a line setup does not write: %q", f, l)
			}
		}
	}
	// Nix's own reading: nix.conf gives exactly our setting, the machines file parses to our builder.
	confDir := filepath.Join(root, "etc/nix")
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command", "show-config")
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+confDir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "builders = @"+confDir+"/machines\n") || !strings.Contains(string(out), "builders-use-substitutes = true\n") {
		t.Errorf("nix show-config with setup's nix.conf: %v\n%s", err, out)
	}
	drv := filepath.Join(t.TempDir(), "probe.nix")
	os.WriteFile(drv, []byte(`derivation { name = "probe"; system = "aarch64-linux"; builder = "/bin/sh"; }`), 0o644)
	cmd = exec.Command("timeout", "60", "nix-build", drv, "--store", filepath.Join(t.TempDir(), "store"), "--no-out-link",
		"--option", "max-jobs", "0", "--option", "build-users-group", "", "--option", "substituters", "")
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+confDir, "NIX_SSHOPTS=-F /dev/null -o ConnectTimeout=1")
	out, _ = cmd.CombinedOutput()
	if strings.Contains(string(out), "bad machine specification") || !strings.Contains(string(out), "'ssh-ng://builder@wrapix-builder'") {
		t.Errorf("Nix does not read exactly our builder from the machines file:\n%s", out)
	}
}

// Issue 10's table: hostile text (control characters, quotes, %, ${,
// unicode, very long values, ssh_config directives) through every input
// that could reach a file setup writes as root: the data dir (flag and
// XDG_DATA_HOME), the config dir, HOME, the user's names, the key files and
// the config values. Each run either writes files that mean exactly what
// setup intends (read by ssh and Nix themselves), or stops with one error
// line and writes nothing.
func TestSetupHostileInputs(t *testing.T) {
	testenv.Require(t, "ssh", "nix", "nix-build")
	inject := "d\nHost *\n  ProxyCommand touch /tmp/wrapix-pwned\nInclude /tmp/evil.conf\nMatch all\n"
	long := strings.Repeat(strings.Repeat("ü", 100)+"/", 12) // 2400 bytes of unicode path
	values := map[string]string{
		"newline directives": inject, "directives without spaces": "d\nHost=*\nProxyCommand=/tmp/wrapix-pwned\nInclude=/tmp/evil.conf\nIdentityFile=/x",
		"carriage return": "a\rHost *", "tab and hash": "a\t#b c",
		"quotes": `a"b'c\"`, "percent": "%d%h%%n", "dollar brace": "${HOME}$(id)`id`", "semicolon": "a;b # c",
		"unicode": "Ünïcødé ✓ \u202egnp.exe", "very long": long, "escape sequence": "a\x1b[2Jb",
	}
	type input struct {
		name  string
		apply func(t *testing.T, w *testenv.World, v string) []string // returns extra setup args
	}
	inputs := []input{
		{"--data-dir", func(t *testing.T, w *testenv.World, v string) []string {
			d := filepath.Join(w.Home, v, "wrapix")
			keysAt(t, "--data-dir", d)
			w.DataDir = d
			return []string{"--data-dir", d}
		}},
		{"XDG_DATA_HOME", func(t *testing.T, w *testenv.World, v string) []string {
			t.Setenv("XDG_DATA_HOME", filepath.Join(w.Home, v))
			w.DataDir = filepath.Join(w.Home, v, "wrapix")
			keysAt(t)
			return nil
		}},
		{"HOME", func(t *testing.T, w *testenv.World, v string) []string {
			home := filepath.Join(w.Home, v)
			os.MkdirAll(home, 0o755)
			t.Setenv("HOME", home)
			t.Setenv("XDG_DATA_HOME", "")
			w.DataDir = filepath.Join(home, ".local/share/wrapix")
			keysAt(t)
			return nil
		}},
		{"--config-dir", func(t *testing.T, w *testenv.World, v string) []string {
			d := filepath.Join(w.Home, v, "cfg")
			os.MkdirAll(d, 0o755)
			os.Rename(filepath.Join(w.ConfigDir, "config.toml"), filepath.Join(d, "config.toml"))
			keysAt(t)
			return []string{"--config-dir", d}
		}},
		{"user names", func(t *testing.T, w *testenv.World, v string) []string {
			for _, n := range []string{"USER", "LOGNAME", "SUDO_USER"} {
				t.Setenv(n, v)
			}
			keysAt(t)
			return nil
		}},
		{"key comments", func(t *testing.T, w *testenv.World, v string) []string {
			keysAt(t)
			for _, f := range []string{"host_ed25519.pub", "client_ed25519.pub"} {
				p := filepath.Join(w.DataDir, "builder-keys", f)
				data, _ := os.ReadFile(p)
				os.WriteFile(p, []byte(strings.Join(strings.Fields(string(data))[:2], " ")+" "+v+"\n"), 0o644)
			}
			return nil
		}},
		{"systems", func(t *testing.T, w *testenv.World, v string) []string {
			keysAt(t)
			w.WriteConfig("systems = [" + tomlString(v) + "]\n")
			return nil
		}},
		{"supported-features", func(t *testing.T, w *testenv.World, v string) []string {
			keysAt(t)
			w.WriteConfig("supported-features = [\"big-parallel\", " + tomlString(v) + "]\n")
			return nil
		}},
	}
	for _, in := range inputs {
		for name, v := range values {
			t.Run(in.name+"/"+name, func(t *testing.T) {
				w := testenv.New(t)
				extra := in.apply(t, w, v)
				root := t.TempDir()
				os.MkdirAll(filepath.Join(root, "etc/nix"), 0o755)
				os.WriteFile(filepath.Join(root, "etc/nix/nix.conf"), []byte("trusted-users = root\n"), 0o644)
				before := snapshotDir(t, root)
				dry := wb(t, append(extra, "setup", "--dry-run", "--root", root)...)
				r := wb(t, append(extra, "setup", "--root", root)...)
				if r.code != 0 {
					oneErrorLine(t, r, r.code)
					if dry.code != r.code {
						t.Errorf("--dry-run exit %d, setup %d", dry.code, r.code)
					}
					if snapshotDir(t, root) != before {
						t.Fatal("a refused setup wrote files")
					}
					return
				}
				if dry.code != 0 || strings.ContainsRune(dry.stdout, '\x1b') || strings.Contains(dry.stdout, "ProxyCommand") {
					t.Errorf("dry run: %d\n%s", dry.code, dry.stdout)
				}
				checkRootFiles(t, w, root)
				if _, err := os.Stat("/tmp/wrapix-pwned"); err == nil {
					t.Fatal("an injected ProxyCommand ran")
				}
			})
		}
	}
}

func tomlString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\x1b", `\u001b`)
	return `"` + r.Replace(s) + `"`
}

// keysAt creates the key pairs where the CLI finds them with args.
func keysAt(t *testing.T, args ...string) {
	t.Helper()
	if r := wb(t, append(args, "keys", "rotate")...); r.code != 0 {
		t.Fatalf("keys rotate: %s", r.stderr)
	}
}

// Issue 10 point 2: root copies exactly the key bytes it checked. The key is
// swapped for a symlink to a root-only key between the check and the rest of
// setup; root's copy must still be the user's key (before the fix, setup
// re-read the path and copied the other file). A key that already is a link,
// or belongs to another user than the one sudo names, is refused.
func TestSetupCopiesTheCheckedKeyBytes(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	keyPath := filepath.Join(w.DataDir, "builder-keys", "client_ed25519")
	mine, _ := os.ReadFile(keyPath)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "root_only")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root-only", "-f", secret).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	rootOnly, _ := os.ReadFile(secret)
	afterKeysLoaded = func(paths.Layout) {
		os.Rename(keyPath, keyPath+".moved")
		os.Symlink(secret, keyPath)
	}
	defer func() { afterKeysLoaded = func(paths.Layout) {} }()
	root := t.TempDir()
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	// Root's copy is re-encoded (issue 16 point 4): compare the keys it holds.
	same := func(a, b []byte) bool {
		ka, errA := ssh.ParsePrivateKey(a)
		kb, errB := ssh.ParsePrivateKey(b)
		return errA == nil && errB == nil && bytes.Equal(ka.PublicKey().Marshal(), kb.PublicKey().Marshal())
	}
	got, _ := os.ReadFile(filepath.Join(root, nixconf.RootKeyPath))
	if same(got, rootOnly) || !same(got, mine) {
		t.Fatalf("root's copy is not the key that was checked (root-only key copied: %v)", same(got, rootOnly))
	}
	afterKeysLoaded = func(paths.Layout) {}

	// Now the key is that symlink: refused, nothing written.
	root2 := t.TempDir()
	oneErrorLine(t, wb(t, "setup", "--root", root2), 5, "symbolic link", "client_ed25519")
	os.Remove(keyPath)
	os.Rename(keyPath+".moved", keyPath)

	// Keys owned by someone other than the user sudo names: refused.
	t.Setenv("SUDO_UID", "4242")
	oneErrorLine(t, wb(t, "setup", "--root", root2), 5, "owned by uid 0", "uid 4242")
	os.Chown(filepath.Join(w.DataDir, "builder-keys"), 4242, 4242)
	oneErrorLine(t, wb(t, "setup", "--root", root2), 5, "not owned by uid 4242")
	t.Setenv("SUDO_UID", "")
	os.Chown(filepath.Join(w.DataDir, "builder-keys"), 0, 0)
	os.Chmod(filepath.Join(w.DataDir, "builder-keys"), 0o770)
	oneErrorLine(t, wb(t, "setup", "--root", root2), 5, "mode 0770", "chmod 700")
	if entries, _ := os.ReadDir(root2); len(entries) != 0 {
		t.Fatalf("a refused setup wrote %v", entries)
	}
}

// `setup --dry-run` runs as the user (only a real setup goes through sudo).
// After a first setup, root's key copy is 0600 root: the dry run must still
// show the plan (the key only by size) instead of failing to read it.
func TestDryRunAsTheUserAfterSetup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run setup and then drop to another user")
	}
	w := testenv.New(t)
	keysAt(t)
	root := t.TempDir()
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	const uid, gid = 65534, 65534 // nobody
	for _, d := range []string{filepath.Dir(w.Home), filepath.Dir(root), root} {
		os.Chmod(d, 0o755)
	}
	if err := filepath.Walk(w.Home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	bin, _ := os.ReadFile(filepath.Join(testenv.Binaries(t), "wrapix-builder")) // its directory is root's (0700)
	self := filepath.Join(root, "wrapix-builder")
	if err := os.WriteFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "setup", "--dry-run", "--root", root)
	env := []string{"HOME=" + w.Home, "XDG_DATA_HOME=" + filepath.Dir(w.DataDir), "XDG_CONFIG_HOME=" + filepath.Dir(w.ConfigDir), "PATH=" + os.Getenv("PATH")}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("setup --dry-run as the user: %v\n%s", err, stderr.String())
	}
	priv, _ := os.ReadFile(filepath.Join(w.DataDir, "builder-keys", "client_ed25519"))
	if !strings.Contains(stdout.String(), "(the client private key") || bytes.Contains(stdout.Bytes(), priv[40:80]) {
		t.Fatalf("dry run output:\n%s", stdout.String())
	}

	// An administrator keeps nix.conf root-only (it holds access tokens):
	// the user's dry run cannot show it, and says to run it through sudo.
	os.Chmod(filepath.Join(root, "etc/nix/nix.conf"), 0o600)
	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(self, "setup", "--dry-run", "--root", root)
	cmd.Env, cmd.SysProcAttr, cmd.Stdout, cmd.Stderr = env, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}, &stdout, &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "sudo wrapix-builder setup --dry-run") || strings.Count(stderr.String(), "\n") != 1 {
		t.Fatalf("dry run over a root-only nix.conf: %v\n%s", err, stderr.String())
	}
}

// The app's administrator prompt runs setup as root without SUDO_UID and
// names its user with --for-uid: keys that belong to anyone else (the app's
// environment can point its data directory at another user's) are refused,
// not copied into root's files.
func TestAdminPromptSetupActsForTheAppsUser(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	t.Setenv("SUDO_UID", "")
	t.Setenv("PKEXEC_UID", "")
	root := t.TempDir()
	// The keys are root's here (the test runs as root): another user's for an app of uid 4242.
	oneErrorLine(t, wb(t, "setup", "--root", root, "--for-uid", "4242"), 5, "uid 4242")
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a refused setup wrote %v", entries)
	}
	filepath.Walk(filepath.Join(w.DataDir, "builder-keys"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 4242, 4242) })
	os.Chown(filepath.Join(w.ConfigDir, "config.toml"), 4242, 4242) // as root, setup reads only the user's own config.toml
	if r := wb(t, "setup", "--root", root, "--for-uid", "4242"); r.code != 0 {
		t.Fatalf("setup for the key owner: %s", r.stderr)
	}
	// Under sudo, --for-uid may only name sudo's own user (issue 16 point 2).
	t.Setenv("SUDO_UID", "4242")
	if r := wb(t, "setup", "--root", t.TempDir(), "--for-uid", "4242"); r.code != 0 {
		t.Fatalf("setup --for-uid SUDO_UID under sudo: %s", r.stderr)
	}
}

// Issue 16 point 2: with SUDO_UID=4343 --for-uid 4242, root copied 4242's
// key and acted for 4242 with the caller's directories. --for-uid must equal
// SUDO_UID; the data and config directories must be the user's (or root's),
// with nobody else able to change them.
func TestSetupActsOnlyForSudosUser(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	filepath.Walk(filepath.Join(w.DataDir, "builder-keys"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 4242, 4242) })
	os.Chown(filepath.Join(w.ConfigDir, "config.toml"), 4242, 4242)
	root := t.TempDir()
	t.Setenv("SUDO_UID", "4343")
	oneErrorLine(t, wb(t, "setup", "--root", root, "--for-uid", "4242"), 2, "--for-uid 4242", "SUDO_UID 4343")
	// The caller's config directory for 4242's setup: refused.
	t.Setenv("SUDO_UID", "4242")
	os.Chown(w.ConfigDir, 4343, 4343)
	oneErrorLine(t, wb(t, "setup", "--root", root), 10, w.ConfigDir, "uid 4343", "4242")
	os.Chown(w.ConfigDir, 4242, 4242)
	os.Chmod(w.ConfigDir, 0o777)
	oneErrorLine(t, wb(t, "setup", "--root", root), 10, w.ConfigDir, "0777")
	os.Chmod(w.ConfigDir, 0o755)
	// The caller's data directory (4242's keys inside it): refused.
	os.Chown(w.DataDir, 4343, 4343)
	oneErrorLine(t, wb(t, "setup", "--root", root), 10, w.DataDir, "uid 4343")
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("a refused setup wrote %v", entries)
	}
	os.Chown(w.DataDir, 4242, 4242)
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup for sudo's user with their own directories: %s", r.stderr)
	}
}

// Issue 16 point 1: a user allowed to `sudo wrapix-builder setup` hands root
// a --root tree of their own: etc/ssh/ssh_config.d links to root's real
// directory and a planted journal "restores" an ssh drop-in there. Root must
// refuse a tree the user could change (owned by them, writable by others, or
// linked) and write nothing; root's own scratch trees keep working.
func TestRootRefusesATreeTheUserCouldChange(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	const user = 4242
	filepath.Walk(w.DataDir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, user, user) })
	os.Chown(filepath.Join(w.ConfigDir, "config.toml"), user, user)
	outside := t.TempDir() // stands for root's /etc/ssh/ssh_config.d
	victim := filepath.Join(outside, "100-wrapix-builder.conf")
	os.WriteFile(victim, []byte("# root's drop-in\n"), 0o644)
	plant := func(t *testing.T, tree string) {
		os.MkdirAll(filepath.Join(tree, "etc/nix"), 0o755)
		os.MkdirAll(filepath.Join(tree, "etc/ssh"), 0o755)
		os.Symlink(outside, filepath.Join(tree, "etc/ssh/ssh_config.d"))
		evil := base64.StdEncoding.EncodeToString([]byte("Match exec \"/tmp/x\"\n"))
		os.WriteFile(filepath.Join(tree, setup.JournalPath), []byte(`{"version":1,"files":{"/etc/ssh/ssh_config.d/100-wrapix-builder.conf":{"existed":true,"mode":420,"content":"`+evil+`"}}}`), 0o600)
	}
	unchanged := func(t *testing.T) {
		t.Helper()
		if got, _ := os.ReadFile(victim); string(got) != "# root's drop-in\n" {
			t.Fatalf("root wrote through the user's tree into %s:\n%s", victim, got)
		}
	}
	t.Setenv("SUDO_UID", "4242")
	// The user's own tree.
	tree := filepath.Join(t.TempDir(), "r")
	plant(t, tree)
	filepath.Walk(tree, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, user, user) })
	for _, args := range [][]string{{"--undo"}, {}, {"--dry-run"}} {
		r := wb(t, append([]string{"setup", "--root", tree}, args...)...)
		unchanged(t)
		oneErrorLine(t, r, 10, tree, "owned by uid 4242")
	}
	// Root owns every directory, but one is a link, or others may write to one.
	tree = filepath.Join(t.TempDir(), "r")
	plant(t, tree)
	oneErrorLine(t, wb(t, "setup", "--undo", "--root", tree), 10, filepath.Join(tree, "etc/ssh/ssh_config.d"), "symbolic link")
	unchanged(t)
	os.Remove(filepath.Join(tree, "etc/ssh/ssh_config.d"))
	os.Chmod(filepath.Join(tree, "etc/ssh"), 0o777)
	oneErrorLine(t, wb(t, "setup", "--root", tree), 10, filepath.Join(tree, "etc/ssh"), "0777")
	// Root's own scratch tree (root-owned, nobody else may write) works, under sudo or not.
	os.Chmod(filepath.Join(tree, "etc/ssh"), 0o755)
	os.Remove(filepath.Join(tree, setup.JournalPath))
	if r := wb(t, "setup", "--root", tree); r.code != 0 {
		t.Fatalf("setup into root's own tree: %s", r.stderr)
	}
	t.Setenv("SUDO_UID", "")
	if r := wb(t, "setup", "--undo", "--root", tree); r.code != 0 {
		t.Fatalf("undo in root's own tree: %s", r.stderr)
	}
	unchanged(t)
}

// Issue 16 point 3: root reads config.toml as the user's file. A FIFO hung
// root (and its signals were swallowed); a link or hard link to a root-only
// file had its text quoted in the error. Each is now one error line, at
// once, that quotes nothing of the file.
func TestRootReadsConfigAsTheUsersFile(t *testing.T) {
	w := testenv.New(t)
	keysAt(t)
	const user = 4242
	filepath.Walk(filepath.Join(w.DataDir, "builder-keys"), func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, user, user) })
	t.Setenv("SUDO_UID", "4242")
	secret := filepath.Join(t.TempDir(), "root-only.toml")
	os.WriteFile(secret, []byte("access-tokens = \"github.com=hunter2\"\n"), 0o600)
	cfg := filepath.Join(w.ConfigDir, "config.toml")
	for _, tc := range []struct {
		name, want string
		make       func()
	}{
		{"fifo", "not a regular file", func() { syscall.Mkfifo(cfg, 0o644); os.Lchown(cfg, user, user) }},
		{"symlink to a root-only file", "symbolic link", func() { os.Symlink(secret, cfg); os.Lchown(cfg, user, user) }},
		{"hard link to a root-only file", "not owned by uid 4242", func() { os.Link(secret, cfg) }},
		{"huge", "larger than", func() {
			os.WriteFile(cfg, bytes.Repeat([]byte("# comment\n"), 1<<20), 0o644)
			os.Chown(cfg, user, user)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(cfg)
			tc.make()
			root := t.TempDir()
			done := make(chan result, 1)
			go func() { done <- wb(t, "setup", "--root", root) }()
			select {
			case r := <-done:
				oneErrorLine(t, r, 3, cfg, tc.want)
				if strings.Contains(r.stderr, "hunter2") || strings.Contains(r.stderr, "access-tokens") {
					t.Errorf("the error quotes a root-only file: %s", r.stderr)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("setup as root hangs on the user's config.toml")
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("a refused setup wrote %v", entries)
			}
		})
	}
}

// Issue 16 point 4: root's copy of the client key held up to 16 KiB of the
// user's text around the PEM block. Now it is the key parsed and encoded
// again: only the key, which real OpenSSH reads as the same key, and the
// same bytes on every run.
func TestRootKeyCopyHoldsNoUserText(t *testing.T) {
	testenv.Require(t, "ssh-keygen")
	w := testenv.New(t)
	keysAt(t)
	keyPath := filepath.Join(w.DataDir, "builder-keys", "client_ed25519")
	key, _ := os.ReadFile(keyPath)
	junk := "Match exec \"/tmp/x\"\n" + strings.Repeat("user text\n", 1000)
	os.WriteFile(keyPath, []byte(junk+string(key)+junk[:4000]), 0o600)
	root := t.TempDir()
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	copyPath := filepath.Join(root, nixconf.RootKeyPath)
	got, _ := os.ReadFile(copyPath)
	if bytes.Contains(got, []byte("user text")) || bytes.Contains(got, []byte("Match")) || len(got) > len(key)+200 {
		t.Fatalf("root's copy holds the user's text (%d bytes):\n%.300s", len(got), got)
	}
	pub, _ := os.ReadFile(keyPath + ".pub")
	derived, err := exec.Command("ssh-keygen", "-y", "-f", copyPath).Output()
	if err != nil || strings.Join(strings.Fields(string(derived))[:2], " ") != strings.Join(strings.Fields(string(pub))[:2], " ") {
		t.Fatalf("ssh-keygen -y on root's copy: %v %q, want %q", err, derived, pub)
	}
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup again: %s", r.stderr)
	}
	if again, _ := os.ReadFile(copyPath); !bytes.Equal(again, got) {
		t.Error("a second setup wrote a different root copy")
	}
}

// Issue 16 point 5: `setup --uri port` as root runs `nix --version`; a
// `nix` the user put first on $PATH is never run by root.
func TestRootSetupNeverRunsTheUsersNix(t *testing.T) {
	testenv.New(t)
	keysAt(t)
	bin := filepath.Join(t.TempDir(), "users-bin")
	os.MkdirAll(bin, 0o755)
	marker := filepath.Join(t.TempDir(), "ran")
	os.WriteFile(filepath.Join(bin, "nix"), []byte("#!/bin/sh\ntouch "+marker+"\necho 'nix (Nix) 2.31.0'\n"), 0o755)
	os.Chown(bin, 4242, 4242)
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	wb(t, "setup", "--dry-run", "--root", t.TempDir(), "--uri", "port")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("root ran the user's nix")
	}
}

// Issue 16 point 3: SIGTERM and SIGINT were swallowed while setup waited
// (the CLI catches them to cancel its context, and a blocked read never
// looks). Setup is made to wait on a FIFO where it reads /etc/ssh/ssh_config
// (root's own scratch tree), then sent SIGTERM: it must end, with one error
// line.
func TestSignalEndsSetup(t *testing.T) {
	testenv.New(t)
	keysAt(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/ssh"), 0o755)
	fifo := filepath.Join(root, "etc/ssh/ssh_config")
	syscall.Mkfifo(fifo, 0o644)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "setup", "--root", root)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// A non-blocking open for writing succeeds once setup waits to read;
	// holding it open keeps setup waiting in its read.
	var w *os.File
	for deadline := time.Now().Add(60 * time.Second); w == nil; {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			w = f
		} else if time.Now().After(deadline) {
			t.Fatalf("setup never read the FIFO: %v", err)
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	defer w.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		r := result{stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
		if err == nil {
			t.Fatal("setup succeeded after SIGTERM")
		}
		oneErrorLine(t, r, 10, "interrupted")
	case <-time.After(30 * time.Second):
		t.Fatal("setup swallowed SIGTERM and kept waiting")
	}
}
