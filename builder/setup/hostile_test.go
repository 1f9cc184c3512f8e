package setup

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/toolpath"
)

// Nix itself reads the machines file setup wrote, through its default
// `builders = @$NIX_CONF_DIR/machines` (Debian's Nix follows NIX_CONF_DIR):
// the marker lines must not become machine lines (issue 8, defect 0: Nix
// splits on ';' before it strips comments). The builder is unreachable here,
// so Nix gets as far as connecting to it: the error names the machine, never
// a "bad machine specification".
func TestNixReadsTheMachinesFile(t *testing.T) {
	if _, err := exec.LookPath("nix-build"); err != nil {
		t.Fatal("nix-build is required (apt-get install nix-bin)")
	}
	root := t.TempDir()
	write(t, root, "/etc/nix/machines", "# an administrator's comment\n", 0o644)
	write(t, root, "/etc/nix/nix.conf", "max-jobs = 0\nbuild-users-group =\nsubstituters =\n", 0o644)
	apply(t, root, "linux", nil, &recorder{})
	work := t.TempDir()
	drv := filepath.Join(work, "probe.nix")
	os.WriteFile(drv, []byte(`derivation { name = "probe"; system = "aarch64-linux"; builder = "/bin/sh"; }`), 0o644)
	cmd := exec.Command("timeout", "60", "nix-build", drv, "--store", filepath.Join(work, "store"), "--no-out-link")
	// No ssh_config here: ssh to the alias fails at once, which is all this test needs.
	cmd.Env = append(os.Environ(), "NIX_CONF_DIR="+filepath.Join(root, "etc/nix"), "NIX_SSHOPTS=-F /dev/null -o ConnectTimeout=1", "HOME="+work)
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "bad machine specification") || strings.Contains(string(out), "failed to convert") {
		t.Fatalf("Nix cannot parse the machines file setup wrote:\n%s\n--- machines\n%s", out, mustRead(t, filepath.Join(root, "etc/nix/machines")))
	}
	if !strings.Contains(string(out), "ssh-ng://builder@wrapix-builder") {
		t.Fatalf("Nix did not use the builders entry from the machines file:\n%s", out)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// Issue 10 point 3: a damaged block (BEGIN without END, two BEGINs, END
// alone) is an error with a fix, and the file keeps every byte, through
// setup, --dry-run and --undo alike.
func TestDamagedBlockIsAnErrorNeverARewrite(t *testing.T) {
	for _, tc := range []struct{ name, damage string }{
		{"END removed, admin lines after", "drop-end"},
		{"two BEGINs", "two-begins"},
		{"END without BEGIN", "end-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, "/etc/nix/nix.conf", "trusted-users = root\n", 0o644)
			r := &recorder{}
			apply(t, root, "linux", nil, r)
			p := filepath.Join(root, "etc/nix/nix.conf")
			data := mustRead(t, p)
			switch tc.damage {
			case "drop-end":
				data = strings.Replace(data, blockEnd, "", 1) + "max-jobs = 8\n"
			case "two-begins":
				data = blockBegin + "builders-use-substitutes = false\n" + data + "max-jobs = 8\n"
			case "end-only":
				data = strings.Replace(data, blockBegin, "", 1) + "max-jobs = 8\n"
			}
			os.WriteFile(p, []byte(data), 0o644)
			e, err := Observe(root, "linux", nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compute(e, params(), []byte("k"))
			if !problem.Is(err, problem.Setup) || !strings.Contains(err.Error(), "damaged wrapix-builder block") || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("Compute over a damaged block: %v", err)
			}
			// Apply with a plan made before the damage (the race an admin edit can win) refuses too.
			plan := Plan{Ops: []Op{{Kind: OpBlock, Path: "/etc/nix/nix.conf", Content: []byte("builders-use-substitutes = true\n"), Mode: 0o644}}}
			if err := Apply(e, plan, r.run); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("Apply over a damaged block: %v", err)
			}
			if err := Undo(e, r.run); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("Undo over a damaged block: %v", err)
			}
			if got := mustRead(t, p); got != data || !strings.Contains(got, "max-jobs = 8\n") {
				t.Fatalf("the damaged file was rewritten:\n%s", got)
			}
		})
	}
}

// Issue 10 point 4: the journal is data. Paths outside the fixed set
// (traversal out of --root), setuid modes and unknown commands are refused
// with a clear error, and nothing is written or run.
func TestHostileJournalIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, journal, want string }{
		{"path traversal", `{"version":1,"files":{"/../outside/evil":{"existed":true,"mode":420,"content":"ZXZpbA=="}}}`, "/../outside/evil"},
		{"setuid mode", `{"version":1,"files":{"/etc/nix/wrapix_builder_known_hosts":{"existed":true,"mode":` + itoa(int(0o4755|os.ModeSetuid)) + `,"content":"ZXZpbA=="}}}`, "setuid"},
		{"unknown command", `{"version":1,"files":{},"commands":[["/bin/sh","-c","touch /tmp/pwned"]]}`, "/bin/sh -c touch /tmp/pwned"},
		{"route with shell text", `{"version":1,"files":{},"commands":[["/sbin/route","-n","delete","-net","1.2.3.0/24;id","-interface","bridge100"]]}`, "route"},
		{"foreign directory", `{"version":1,"files":{},"dirs":["/etc/../../tmp"]}`, "directory"},
		{"block content", `{"version":1,"files":{"/etc/nix/nix.conf":{"existed":true,"mode":420,"block":false,"content":"ZXZpbA=="}}}`, "wrong kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			write(t, root, JournalPath, tc.journal, 0o600)
			before := tree(t, parent)
			r := &recorder{}
			e, _ := Observe(root, "linux", nil)
			err := Undo(e, r.run)
			if !problem.Is(err, problem.Setup) || !strings.Contains(err.Error(), "not a journal setup wrote") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("undo with a hostile journal: %v", err)
			}
			plan, _ := Compute(e, params(), []byte("k"))
			if err := Apply(e, plan, r.run); err == nil || !strings.Contains(err.Error(), "not a journal setup wrote") {
				t.Fatalf("apply with a hostile journal: %v", err)
			}
			if len(r.cmds) != 0 {
				t.Fatalf("commands ran: %v", r.cmds)
			}
			if after := tree(t, parent); after != before {
				t.Fatalf("files changed:\n%s\n---\n%s", before, after)
			}
		})
	}
	// The journal setup writes itself is accepted (and round-trips).
	root := t.TempDir()
	apply(t, root, "darwin", func() (*RouteFix, error) { return &RouteFix{"192.168.64.0/24", "bridge100"}, nil }, &recorder{})
	var j journal
	json.Unmarshal([]byte(mustRead(t, filepath.Join(root, JournalPath))), &j)
	if err := j.validate(); err != nil {
		t.Fatalf("setup's own journal refused: %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Issue 10 point 6: under umask 077 the directories setup creates are still
// 0755, so every user's Nix and ssh can read machines, nix.conf, the drop-in.
func TestDirectoriesReadableUnderUmask077(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := t.TempDir()
	os.Chmod(root, 0o755)
	apply(t, root, "linux", nil, &recorder{})
	for _, d := range []string{"etc", "etc/nix", "etc/ssh", "etc/ssh/ssh_config.d"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v, want 0755", d, fi.Mode(), err)
		}
	}
	for _, f := range []string{nixconf.MachinesPath, "/etc/nix/nix.conf", nixconf.SSHConfigPath, nixconf.KnownHostsPath} {
		if fi, err := os.Stat(filepath.Join(root, f)); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v %v, want 0644", f, fi.Mode(), err)
		}
	}
	if st := Check(root, params()); st.Trust != StateOK {
		t.Errorf("check after setup under umask 077: %+v", st)
	}
	// doctor names a directory others cannot read (as an earlier setup left it).
	os.Chmod(filepath.Join(root, "etc/nix"), 0o700)
	if st := Check(root, params()); st.Trust != StateStale || !strings.Contains(st.Detail, "/etc/nix has mode 0700") {
		t.Errorf("check with /etc/nix 0700: %+v", st)
	}
}

// --dry-run shows every byte each file will hold: a diff with the whole file
// as context, existing admin lines included; the private key only by size.
func TestDryRunShowsExactContent(t *testing.T) {
	root := t.TempDir()
	write(t, root, "/etc/nix/nix.conf", "trusted-users = root", 0o644) // no final newline
	e, _ := Observe(root, "linux", nil)
	plan, err := Compute(e, params(), []byte("SECRET KEY MATERIAL\n"))
	if err != nil {
		t.Fatal(err)
	}
	out := plan.Render(true)
	if strings.Contains(out, "SECRET") || !strings.Contains(out, "(the client private key, 20 bytes, not shown)") {
		t.Errorf("the key is shown or not described:\n%s", out)
	}
	for _, want := range []string{
		"--- /etc/nix/nix.conf\n", "-trusted-users = root\n", `\ No newline at end of file`, "+trusted-users = root\n",
		"+" + strings.TrimSuffix(blockBegin, "\n") + "\n", "+builders-use-substitutes = true\n",
		"--- /dev/null\n", "+++ " + nixconf.SSHConfigPath + "\n",
		"+  GlobalKnownHostsFile " + nixconf.KnownHostsPath + "\n",
		"+" + strings.TrimSuffix(nixconf.MachinesLine(params()), "\n") + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	// Every line of every file appears (the ssh drop-in, in full).
	for _, l := range strings.Split(strings.TrimSuffix(nixconf.SSHConfig(params()), "\n"), "\n") {
		if !strings.Contains(out, "+"+l+"\n") {
			t.Errorf("dry run lacks drop-in line %q", l)
		}
	}
}

// A machines file from an earlier setup (its BEGIN marker had a ';', which Nix
// read as a machine): Check says Nix cannot read it, and setup replaces the
// old block in place, keeping the administrator's lines.
func TestEarlierMarkerIsRepaired(t *testing.T) {
	root := t.TempDir()
	old := "# BEGIN wrapix-builder (managed by `wrapix-builder setup`; remove with `sudo wrapix-builder setup --undo`)\n"
	admin := "ssh://me@other x86_64-linux - 2 1 - - -\n"
	write(t, root, "/etc/nix/machines", admin+old+nixconf.MachinesLine(params())+blockEnd, 0o644)
	if st := Check(root, params()); st.NixConfig != StateStale || !strings.Contains(st.Detail, "Nix cannot read") {
		t.Fatalf("check of an old marker: %+v", st)
	}
	apply(t, root, "linux", nil, &recorder{})
	got := mustRead(t, filepath.Join(root, "etc/nix/machines"))
	if got != admin+blockBegin+nixconf.MachinesLine(params())+blockEnd {
		t.Fatalf("machines after setup:\n%s", got)
	}
	if bad := MachinesMisread(got); bad != "" {
		t.Fatalf("Nix would misread %s", bad)
	}
	if st := Check(root, params()); st.NixConfig != StateOK {
		t.Fatalf("check after repair: %+v", st)
	}
}

// Issue 16 review point 3: on Linux root ran `systemctl` looked up on the
// caller's $PATH. A fake systemctl first on $PATH is never what setup (or
// undo, for a journal an older setup wrote with the bare name) runs: every
// command is an absolute path in root's fixed places.
func TestRootRunsOnlyFixedSystemctl(t *testing.T) {
	if _, err := toolpath.Systemctl.FindFixed(); err != nil {
		t.Skipf("no systemctl here: %v", err)
	}
	fake := t.TempDir()
	os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
	t.Setenv("PATH", fake+":"+os.Getenv("PATH"))
	root := t.TempDir()
	r := &recorder{}
	apply(t, root, "linux", nil, r)
	e, _ := Observe(root, "linux", nil)
	if err := Undo(e, r.run); err != nil {
		t.Fatal(err)
	}
	// An older journal's bare name.
	write(t, root, JournalPath, `{"version":1,"files":{},"commands":[["systemctl","try-restart","nix-daemon.service"]]}`, 0o600)
	if err := Undo(e, r.run); err != nil {
		t.Fatal(err)
	}
	if len(r.cmds) != 3 {
		t.Fatalf("commands run: %q, want the reload three times", r.cmds)
	}
	for _, c := range r.cmds {
		if !filepath.IsAbs(c[0]) || strings.HasPrefix(c[0], fake) || !slices.Contains(toolpath.Systemctl.Places, filepath.Dir(c[0])) {
			t.Errorf("root would run %q: not root's systemctl in a fixed place", c)
		}
	}
}
