package setup

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
)

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkDsC8tjKvalQehx9UHkKNE1Nzw6fv"

func params() nixconf.Params {
	return nixconf.Params{User: "builder", Port: 2222, Systems: []string{"aarch64-linux"}, MaxJobs: 4, SpeedFactor: 1,
		HostKey: hostKey, HostKeyBase64: base64.StdEncoding.EncodeToString([]byte(hostKey)), UseSubstitutes: true}
}

// tree returns every path under root with its mode, link target or content.
func tree(t *testing.T, root string) string {
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			b.WriteString(rel + " -> " + target + "\n")
		case fi.IsDir():
			b.WriteString(rel + "/ " + fi.Mode().Perm().String() + "\n")
		default:
			data, _ := os.ReadFile(p)
			b.WriteString(rel + " " + fi.Mode().Perm().String() + " " + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

func write(t *testing.T, root, path, content string, mode os.FileMode) {
	p := filepath.Join(root, path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

type recorder struct{ cmds [][]string }

func (r *recorder) run(c []string) error { r.cmds = append(r.cmds, c); return nil }

func apply(t *testing.T, root, goos string, probe RouteProber, r *recorder) Plan {
	e, err := Observe(root, goos, probe)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Compute(e, params(), []byte("PRIVATE KEY BYTES\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(e, plan, r.run); err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestApplyThreeTimesIdenticalUndoRestoresByteForByte(t *testing.T) {
	for _, tc := range []struct{ name, nixConf, machines string }{
		{"fresh system", "", ""},
		{"existing config", "# my nix.conf\nexperimental-features = nix-command flakes\ntrusted-users = root alice", "ssh://me@other x86_64-linux - 2 1 - - -\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, "/etc/ssh/ssh_config", "Include /etc/ssh/ssh_config.d/*\n", 0o644)
			if tc.nixConf != "" {
				write(t, root, "/etc/nix/nix.conf", tc.nixConf, 0o644)
				write(t, root, "/etc/nix/machines", tc.machines, 0o644)
			}
			original := tree(t, root)
			r := &recorder{}
			apply(t, root, "darwin", nil, r)
			first := tree(t, root)
			apply(t, root, "darwin", nil, r)
			apply(t, root, "darwin", nil, r)
			if third := tree(t, root); third != first {
				t.Fatalf("apply is not idempotent:\n%s\n---\n%s", first, third)
			}
			for _, want := range []string{nixconf.RootKeyPath, nixconf.KnownHostsPath, nixconf.SSHConfigPath} {
				if _, err := os.Stat(filepath.Join(root, want)); err != nil {
					t.Errorf("%s not written", want)
				}
			}
			if fi, _ := os.Stat(filepath.Join(root, nixconf.RootKeyPath)); fi.Mode().Perm() != 0o600 {
				t.Errorf("root key mode %v", fi.Mode())
			}
			machines, _ := os.ReadFile(filepath.Join(root, "/etc/nix/machines"))
			if !strings.Contains(string(machines), nixconf.MachinesLine(params())) || !strings.HasPrefix(string(machines), tc.machines) {
				t.Errorf("machines: %q", machines)
			}
			if len(r.cmds) == 0 || !slices.Equal(r.cmds[0], []string{"/bin/launchctl", "kickstart", "-k", "system/org.nixos.nix-daemon"}) {
				t.Errorf("daemon not reloaded: %v", r.cmds)
			}
			st := Check(root, params())
			if st.Trust != StateOK || st.NixConfig != StateOK {
				t.Errorf("check after apply: %+v", st)
			}
			e, _ := Observe(root, "darwin", nil)
			if err := Undo(e, r.run); err != nil {
				t.Fatal(err)
			}
			if after := tree(t, root); after != original {
				t.Fatalf("undo did not restore the tree:\n--- before\n%s--- after undo\n%s", original, after)
			}
			if err := Undo(e, r.run); err != nil {
				t.Fatal("second undo must be a no-op:", err)
			}
		})
	}
}

func TestUndoKeepsUserEditsMadeAfterSetup(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/nix/nix.conf", "max-jobs = 2\n", 0o644)
	r := &recorder{}
	apply(t, root, "linux", nil, r)
	p := filepath.Join(root, "/etc/nix/nix.conf")
	data, _ := os.ReadFile(p)
	os.WriteFile(p, append(data, "sandbox = true\n"...), 0o644)
	e, _ := Observe(root, "linux", nil)
	if err := Undo(e, r.run); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(p)
	if string(data) != "max-jobs = 2\nsandbox = true\n" {
		t.Fatalf("user edit lost or block left: %q", data)
	}
}

func TestNixDarwinManagedFilesAreNeverWritten(t *testing.T) {
	root := t.TempDir()
	store := filepath.Join(root, "nix/store/abc-etc/nix")
	os.MkdirAll(store, 0o755)
	os.WriteFile(filepath.Join(store, "nix.conf"), []byte("build-users-group = nixbld\n"), 0o444)
	os.MkdirAll(filepath.Join(root, "etc/nix"), 0o755)
	os.Symlink(filepath.Join(root, "nix/store/abc-etc"), filepath.Join(root, "etc/static"))
	os.Symlink("/etc/static/nix/nix.conf", filepath.Join(root, "etc/nix/nix.conf"))
	os.Symlink("/etc/static/nix/machines", filepath.Join(root, "etc/nix/machines"))
	before := tree(t, root)
	r := &recorder{}
	plan := apply(t, root, "darwin", nil, r)
	for _, op := range plan.Ops {
		if op.Path == "/etc/nix/nix.conf" || op.Path == "/etc/nix/machines" || op.Path == nixconf.SSHConfigPath {
			t.Errorf("plan touches %s under nix-darwin", op.Path)
		}
	}
	if !strings.Contains(strings.Join(plan.Notes, " "), "nix-darwin") {
		t.Errorf("no nix-darwin note: %v", plan.Notes)
	}
	after := tree(t, root)
	for _, l := range []string{"etc/nix/nix.conf -> /etc/static/nix/nix.conf", "etc/nix/machines -> /etc/static/nix/machines", "build-users-group = nixbld"} {
		if !strings.Contains(after, l) {
			t.Errorf("managed file changed: %s missing in\n%s", l, after)
		}
	}
	e, _ := Observe(root, "darwin", nil)
	Undo(e, r.run)
	if got := tree(t, root); got != before {
		t.Fatalf("undo under nix-darwin:\n%s\n---\n%s", before, got)
	}
}

func TestDeterminateGetsCustomConf(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/nix/nix.conf", "# Generated by Determinate Nix\n!include nix.custom.conf\n", 0o644)
	write(t, root, determinateDaemonPlist, "<plist/>\n", 0o644)
	plan := apply(t, root, "darwin", nil, &recorder{})
	var paths []string
	for _, op := range plan.Ops {
		paths = append(paths, op.Path+" "+strings.Join(op.Cmd, " "))
	}
	all := strings.Join(paths, "\n")
	if !strings.Contains(all, "/etc/nix/nix.custom.conf") || strings.Contains(all, "/etc/nix/nix.conf ") || !strings.Contains(all, "systems.determinate.nix-daemon") {
		t.Fatalf("plan: %s", all)
	}
}

// Determinate Systems' installer also installs upstream Nix: nix.conf then
// includes nix.custom.conf too, but the daemon is org.nixos.nix-daemon
// (nix-installer src/action/common/configure_upstream_init_service.rs).
// Kickstarting Determinate's label there fails, and setup with it.
func TestUpstreamNixFromDeterminatesInstallerReloadsItsDaemon(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/nix/nix.conf", "# Generated by https://github.com/DeterminateSystems/nix-installer.\n!include nix.custom.conf\n", 0o644)
	write(t, root, "/etc/nix/nix.custom.conf", "# Written by https://github.com/DeterminateSystems/nix-installer.\n", 0o644)
	write(t, root, "/Library/LaunchDaemons/org.nixos.nix-daemon.plist", "<plist/>\n", 0o644)
	r := &recorder{}
	plan := apply(t, root, "darwin", nil, r)
	want := []string{"/bin/launchctl", "kickstart", "-k", "system/org.nixos.nix-daemon"}
	if len(r.cmds) != 1 || !slices.Equal(r.cmds[0], want) {
		t.Fatalf("ran %q, want %q", r.cmds, want)
	}
	if !strings.Contains(plan.Render(false), "/etc/nix/nix.custom.conf") {
		t.Errorf("the setting does not go to the included nix.custom.conf:\n%s", plan.Render(false))
	}
}

func TestRouteFixOnlyWhenNeeded(t *testing.T) {
	root := t.TempDir()
	plan := apply(t, root, "darwin", func() (*RouteFix, error) { return nil, nil }, &recorder{})
	if strings.Contains(plan.Render(true), "route") {
		t.Fatal("route added without need")
	}
	root = t.TempDir()
	r := &recorder{}
	apply(t, root, "darwin", func() (*RouteFix, error) { return &RouteFix{"192.168.64.0/24", "bridge100"}, nil }, r)
	apply(t, root, "darwin", func() (*RouteFix, error) { return &RouteFix{"192.168.64.0/24", "bridge100"}, nil }, r)
	e, _ := Observe(root, "darwin", nil)
	r.cmds = nil
	Undo(e, r.run)
	var deletes int
	for _, c := range r.cmds {
		if slices.Contains(c, "delete") {
			deletes++
		}
	}
	if deletes != 1 {
		t.Fatalf("undo should delete the route once: %v", r.cmds)
	}
}

func TestDryRunRenderListsEveryOp(t *testing.T) {
	root := t.TempDir()
	e, _ := Observe(root, "darwin", nil)
	plan, err := Compute(e, params(), []byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	out := plan.Render(true)
	for _, want := range []string{nixconf.RootKeyPath + " (mode 0600)", nixconf.KnownHostsPath, nixconf.SSHConfigPath, "/etc/nix/machines", "launchctl kickstart"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Error("Compute wrote files")
	}
}
