package nixconf

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// sshG runs `ssh -G` with an ssh_config that reaches the drop-in only through
// `Include`, as /etc/ssh/ssh_config does, and returns ssh's resolved options.
func sshG(t *testing.T, dropIn string, args ...string) map[string]string {
	t.Helper()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatal("ssh is required (apt-get install openssh-client)")
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "ssh_config.d"), 0o755)
	cfg := filepath.Join(dir, "ssh_config")
	include := ""
	if dropIn != "" {
		os.WriteFile(filepath.Join(dir, "ssh_config.d", "100-wrapix-builder.conf"), []byte(dropIn), 0o644)
		include = "Include " + filepath.Join(dir, "ssh_config.d") + "/*\n"
	}
	os.WriteFile(cfg, []byte(include+"Host *\n  SendEnv LANG\n"), 0o644)
	out, err := exec.Command("ssh", append([]string{"-G", "-F", cfg}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh -G %v: %v\n%s", args, err, out)
	}
	opts := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			if old, dup := opts[k]; dup {
				v = old + "\n" + v
			}
			opts[k] = v
		}
	}
	return opts
}

// Real ssh reads the drop-in through Include: the alias gets the pinned
// settings; for the port form only localhost on the builder's port does,
// never `ssh localhost` (port 22) of every user.
func TestSSHReadsDropInThroughInclude(t *testing.T) {
	for _, form := range []string{FormAlias, FormPort} {
		t.Run(form, func(t *testing.T) {
			drop := SSHConfig(params(form))
			alias := sshG(t, drop, "wrapix-builder")
			want := map[string]string{"hostname": "127.0.0.1", "port": "2222", "user": "builder", "hostkeyalias": "wrapix-builder",
				"identityfile": RootKeyPath, "globalknownhostsfile": KnownHostsPath, "userknownhostsfile": "/dev/null",
				"stricthostkeychecking": "true", "identitiesonly": "yes", "passwordauthentication": "no"}
			for k, v := range want {
				if alias[k] != v {
					t.Errorf("ssh -G wrapix-builder: %s = %q, want %q", k, alias[k], v)
				}
			}
			for _, host := range []string{"localhost", "127.0.0.1", "example.com"} {
				plain := sshG(t, "", host)
				with := sshG(t, drop, host)
				for k, v := range plain {
					if with[k] != v {
						t.Errorf("the drop-in changes `ssh %s`: %s = %q, without it %q", host, k, with[k], v)
					}
				}
			}
			if form == FormPort {
				got := sshG(t, drop, "-p", "2222", "builder@localhost")
				if got["hostkeyalias"] != Alias || got["identityfile"] != RootKeyPath || got["globalknownhostsfile"] != KnownHostsPath {
					t.Errorf("ssh -p 2222 localhost does not get the builder's settings: %v", got)
				}
			}
		})
	}
}

// Every field that reaches a rendered file refuses hostile text: control
// characters, quotes, '%', '${', ';', '#', unicode, very long values.
func TestValidateRefusesHostileValues(t *testing.T) {
	if err := params(FormAlias).Validate(); err != nil {
		t.Fatalf("valid params refused: %v", err)
	}
	hostile := []string{"a\nHost *", "a\rb", "a\tb", "a b", `a"b`, "a'b", "%h", "${x}", "a;b", "a#b", "ünï", "\x1b[2J", "a\x00b", strings.Repeat("a", 5000), ""}
	fields := map[string]func(p *Params, v string){
		"user":    func(p *Params, v string) { p.User = v },
		"system":  func(p *Params, v string) { p.Systems = []string{"aarch64-linux", v} },
		"feature": func(p *Params, v string) { p.Features = []string{v} },
		"host key": func(p *Params, v string) {
			if p.HostKey = hostKey + v; v == "" {
				p.HostKey = ""
			}
		},
		"form": func(p *Params, v string) { p.Form = v + "x" },
	}
	for name, set := range fields {
		for _, v := range hostile {
			p := params(FormAlias)
			set(&p, v)
			err := p.Validate()
			if err == nil {
				t.Errorf("%s %q accepted", name, v)
				continue
			}
			if strings.ContainsAny(err.Error(), "\n\r\x1b\x00") {
				t.Errorf("%s: the error carries control characters: %q", name, err)
			}
		}
	}
	for _, p := range []Params{
		func() Params { p := params(FormAlias); p.Port = 0; return p }(),
		func() Params { p := params(FormAlias); p.MaxJobs = -1; return p }(),
		func() Params { p := params(FormAlias); p.HostKeyBase64 = "bm90IHRoZSBrZXk="; return p }(),
		func() Params { p := params(FormAlias); p.Systems = nil; return p }(),
	} {
		if p.Validate() == nil {
			t.Errorf("accepted %+v", p)
		}
	}
}

// The port form's Match runs `exec` through the invoking user's $SHELL, and
// OpenSSH dies when that is not executable ("Shell … is not executable",
// readconf.c execute_in_shell): `ssh localhost` of every user would depend on
// it and fork a shell each time. Only root's nix-daemon needs the block (the
// key it names is root's 0600 file; Nix runs ssh with SHELL=/bin/sh,
// libstore/ssh.cc createSSHEnv), so another user's `ssh localhost` — any
// port, any $SHELL — is exactly as without the drop-in.
func TestPortFormLeavesOtherUsersLocalhostAlone(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run ssh as another user")
	}
	dir := t.TempDir()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	os.MkdirAll(filepath.Join(dir, "ssh_config.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "ssh_config.d", "100-wrapix-builder.conf"), []byte(SSHConfig(params(FormPort))), 0o644)
	with, without := filepath.Join(dir, "with"), filepath.Join(dir, "without")
	os.WriteFile(with, []byte("Include "+filepath.Join(dir, "ssh_config.d")+"/*\nHost *\n  SendEnv LANG\n"), 0o644)
	os.WriteFile(without, []byte("Host *\n  SendEnv LANG\n"), 0o644)
	run := func(cfg string, args ...string) string {
		cmd := exec.Command("ssh", append([]string{"-G", "-F", cfg}, args...)...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "SHELL=/nonexistent/fish", "USER=nobody"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("ssh -G %v as another user with a missing $SHELL: %v\n%s", args, err, out)
		}
		return string(out)
	}
	for _, args := range [][]string{{"localhost"}, {"-p", "2222", "localhost"}, {"-p", "2222", "127.0.0.1"}} {
		if got, want := run(with, args...), run(without, args...); got != want {
			t.Errorf("the drop-in changes another user's `ssh %v`:\n%s\nwithout it:\n%s", args, got, want)
		}
	}
}
