package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wrapix/wrapix-builder/builder/lifeline"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/builder/wakestate"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

type result struct {
	stdout, stderr string
	code           int
}

// wb runs the CLI in-process with the test's environment.
func wb(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, nil, &out, &errb)
	return result{out.String(), errb.String(), code}
}

// oneErrorLine checks the error contract: exactly one line on stderr
// starting with "wrapix-builder:", naming a fix.
func oneErrorLine(t *testing.T, r result, code int, wants ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "wrapix-builder: ") {
		t.Fatalf("last stderr line is not the error: %q", r.stderr)
	}
	for _, l := range lines[:len(lines)-1] { // progress lines may come first, never other errors
		if strings.HasPrefix(l, "wrapix-builder:") {
			t.Fatalf("more than one error line: %q", r.stderr)
		}
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("error %q lacks %q", last, w)
		}
	}
}

func snapshotDir(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Name() == "standin" {
			return filepath.SkipDir // the stand-in's own state (and its sparse 512 GiB volume image)
		}
		if err == nil && fi.Mode().IsRegular() && !strings.HasSuffix(p, ".lock") {
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + fi.Mode().String() + " " + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

func hasArgs(argv []string, want ...string) bool {
	for i := 0; i+len(want) <= len(argv); i++ {
		if slices.Equal(argv[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// The whole lifecycle against the stand-in running a real sshd, for CLI
// versions of both JSON generations.
func TestLifecycleEveryVersion(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	for _, v := range []string{"1.2.2", "1.0.0", "0.12.0", "0.9.0", "0.6.0"} {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
			t.Setenv("CONTAINER_STANDIN_SYSTEM", "stopped")

			r := wb(t, "status")
			if r.code != 6 || !strings.Contains(r.stdout, "stopped") {
				t.Fatalf("status before start: %d %s %s", r.code, r.stdout, r.stderr)
			}
			r = wb(t, "start")
			if r.code != 0 || !strings.Contains(r.stdout, "ready at 127.0.0.1:"+strconv.Itoa(w.Port)) {
				t.Fatalf("start: %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			if len(w.CallsStarting("system", "start", "--enable-kernel-install")) != 1 {
				t.Error("the container system was not started non-interactively")
			}
			runs := w.CallsStarting("run")
			if len(runs) != 1 {
				t.Fatalf("runs: %v", runs)
			}
			run := runs[0]
			for _, want := range [][]string{
				{"--publish", "127.0.0.1:" + strconv.Itoa(w.Port) + ":22/tcp"},
				{"--memory", "8G"}, {"--cpus", "4"}, {"--name", "wrapix-builder"}, {"--label", "org.wrapix.builder=1"},
				{"--volume", "wrapix-builder-nix:/nix"},
				{"--volume", filepath.Join(w.DataDir, "builder-keys", "guest") + ":/wrapix/keys:ro"},
			} {
				if !hasArgs(run, want...) {
					t.Errorf("run lacks %v: %v", want, run)
				}
			}
			newCaps := v == "0.12.0" || strings.HasPrefix(v, "1.") // volume --opt journal= works from 0.12 (ignored before)
			if slices.Contains(run, "--cap-add") {
				t.Errorf("no capability is added (the store is mounted at /nix by the runtime): %v", run)
			}
			optOut := v == "1.2.1" || v == "1.2.2" // --masked-path/--read-only-path arrived in 1.2.1
			if hasArgs(run, "--masked-path", "NONE", "--read-only-path", "NONE") != optOut {
				t.Errorf("mask opt-out gating wrong for %s: %v", v, run)
			}
			vc := w.CallsStarting("volume", "create")
			if len(vc) != 1 || hasArgs(vc[0], "--opt", "journal=ordered") != newCaps {
				t.Errorf("volume create for %s: %v", v, vc)
			}
			// Keys: private, and the client private key never mounted into the guest.
			guest, _ := os.ReadDir(filepath.Join(w.DataDir, "builder-keys", "guest"))
			for _, g := range guest {
				if strings.HasPrefix(g.Name(), "client_ed25519") && !strings.HasSuffix(g.Name(), ".pub") {
					t.Error("client private key in the guest mount")
				}
			}

			r = wb(t, "start")
			if r.code != 0 || !strings.Contains(r.stdout, "already running") || len(w.CallsStarting("run")) != 1 {
				t.Fatalf("second start not idempotent: %d %s %s", r.code, r.stdout, r.stderr)
			}

			r = wb(t, "status", "--json")
			var rep status.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("status --json: %v\n%s", err, r.stdout)
			}
			if r.code != 0 || rep.Schema != status.Schema || rep.State != "ready" || !rep.SSH.OK || !rep.NixDaemon.OK || rep.NixDaemon.Version == "" ||
				rep.Container.Published != "127.0.0.1:"+strconv.Itoa(w.Port) || rep.Versions.ContainerCLI != v {
				t.Fatalf("status: %d %+v", r.code, rep)
			}

			r = wb(t, "ssh", "echo hello from $(id -un); exit 3")
			if r.code != 3 || r.stdout != "hello from builder\n" {
				t.Fatalf("ssh: %d %q %q", r.code, r.stdout, r.stderr)
			}

			r = wb(t, "stop")
			if r.code != 0 || !strings.Contains(r.stdout, "stopped") {
				t.Fatalf("stop: %d %s %s", r.code, r.stdout, r.stderr)
			}
			if c := w.Calls(); !hasArgs(c[len(c)-2], "stop") || !hasArgs(c[len(c)-1], "delete", "wrapix-builder") {
				t.Errorf("stop must stop then delete (never delete --force): %v", c[len(c)-2:])
			}
			if r := wb(t, "stop"); r.code != 0 || !strings.Contains(r.stdout, "not running") {
				t.Fatalf("second stop: %d %s", r.code, r.stdout)
			}
			if r := wb(t, "status"); r.code != 6 {
				t.Fatalf("status after stop: %d", r.code)
			}
			if _, err := os.Stat(filepath.Join(w.DataDir, "builder-keys", "host_ed25519")); err != nil {
				t.Error("stop removed the keys")
			}
		})
	}
}

// Every failure: one clear line, its documented exit code, nothing lost.
func TestBadInputs(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, w *testenv.World)
		args  []string
		code  int
		wants []string
	}{
		{"container CLI missing", func(t *testing.T, w *testenv.World) { t.Setenv("PATH", "/usr/bin:/bin") },
			[]string{"start"}, 4, []string{"`container` CLI was not found", "/usr/bin:/bin", "/usr/local/bin", "github.com/apple/container", "container-cli"}},
		{"apiserver down", func(t *testing.T, w *testenv.World) { t.Setenv("CONTAINER_STANDIN_FAULTS", "apiserver-down") },
			[]string{"start"}, 4, []string{"container system service is not running", "container system start"}},
		{"too old", func(t *testing.T, w *testenv.World) { t.Setenv("CONTAINER_STANDIN_VERSION", "0.5.0") },
			[]string{"start"}, 4, []string{"0.5.0 is too old", "upgrade"}},
		{"hanging CLI", func(t *testing.T, w *testenv.World) { t.Setenv("CONTAINER_STANDIN_FAULTS", "hang:ls") },
			[]string{"--runtime-timeout", "1s", "start"}, 8, []string{"did not answer within 1s", "container system stop"}},
		{"garbage JSON", func(t *testing.T, w *testenv.World) { t.Setenv("CONTAINER_STANDIN_FAULTS", "garbage-json:ls") },
			[]string{"start"}, 4, []string{"printed output we cannot read"}},
		{"port taken", nil, []string{"start"}, 9, []string{"(container-port) is taken by another program", "set container-port ="}},
		{"name in use", func(t *testing.T, w *testenv.World) { t.Setenv("CONTAINER_STANDIN_FAULTS", "name-in-use") },
			[]string{"start"}, 9, []string{"another process created the builder container"}},
		// The real `run` attaches a volume that another running container
		// has attached (only `volume rm` checks: VolumesService.swift), so
		// start must look for itself before two VMs mount one ext4 image.
		{"volume busy", func(t *testing.T, w *testenv.World) {
			if out, err := exec.Command("container", "run", "--detach", "--name", "other", "--volume", "wrapix-builder-nix:/data", version.Image()).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
		}, []string{"start"}, 9, []string{"store volume wrapix-builder-nix is attached to the running container other", "container stop other"}},
		{"image missing, no Nix to build it", func(t *testing.T, w *testenv.World) {
			t.Setenv("CONTAINER_STANDIN_IMAGES", "other:latest")
			t.Setenv("PATH", testenv.Binaries(t)) // the stand-in, no nix
		}, []string{"start"}, 4, []string{"builder image " + version.Image() + " is not loaded, and building it needs Nix", "install Nix", "image-archive"}},
		{"foreign container", func(t *testing.T, w *testenv.World) {
			if out, err := exec.Command("container", "run", "--detach", "--name", "wrapix-builder", version.Image()).CombinedOutput(); err != nil {
				t.Fatalf("%v %s", err, out)
			}
		}, []string{"stop"}, 9, []string{"was not created by wrapix-builder"}},
		{"corrupt key", func(t *testing.T, w *testenv.World) {
			if r := wb(t, "keys", "rotate"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			os.WriteFile(filepath.Join(w.DataDir, "builder-keys", "client_ed25519"), []byte("-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n"), 0o600)
		}, []string{"start"}, 5, []string{"client_ed25519 is corrupt", "keys rotate"}},
		{"world-readable key", func(t *testing.T, w *testenv.World) {
			wb(t, "keys", "rotate")
			os.Chmod(filepath.Join(w.DataDir, "builder-keys", "host_ed25519"), 0o644)
		}, []string{"start"}, 5, []string{"unsafe permissions 0644", "chmod 600"}},
		{"bad config value", func(t *testing.T, w *testenv.World) { w.WriteConfig(`memory = "8"` + "\n") },
			[]string{"start"}, 3, []string{"config.toml", `"memory"`, `"8GiB"`}},
		{"unknown config key", func(t *testing.T, w *testenv.World) { w.WriteConfig("cpu = 4\n") },
			[]string{"status"}, 3, []string{`unknown key "cpu"`, "cpus"}},
		{"config syntax", func(t *testing.T, w *testenv.World) { w.WriteConfig("[[[\n") },
			[]string{"config"}, 3, []string{"not valid TOML"}},
		{"no keys for config", nil, []string{"config"}, 5, []string{"no SSH keys yet", "wrapix-builder start"}},
		{"bad format", nil, []string{"config", "--format", "yaml"}, 2, []string{`unknown --format "yaml"`, "nix-darwin"}},
		{"port URI on old Nix", func(t *testing.T, w *testenv.World) { wb(t, "keys", "rotate") },
			[]string{"config", "--uri", "port"}, 2, []string{"needs Nix 2.31"}},
		{"unknown flag", nil, []string{"start", "--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"cap over the volume", nil, []string{"gc", "--cap", "1PiB"}, 2, []string{"more than the store volume holds", "512GiB"}},
		{"reset without --yes", nil, []string{"reset-store"}, 2, []string{"deletes the builder's whole store", "reset-store --yes"}},
		{"compact a directory store", func(t *testing.T, w *testenv.World) { w.WriteConfig(`store = "directory"` + "\n") },
			[]string{"gc", "--compact"}, 3, []string{"this store is the directory", "a directory store gives deleted files back"}},
		{"damaged store record", func(t *testing.T, w *testenv.World) {
			os.MkdirAll(w.DataDir, 0o700)
			os.WriteFile(filepath.Join(w.DataDir, "store-volume.json"), []byte("{\x1b[2J"), 0o644)
		}, []string{"start"}, 3, []string{"store-volume.json is damaged", "docs/reclaim.md"}},
		{"store record naming another volume", func(t *testing.T, w *testenv.World) {
			os.MkdirAll(w.DataDir, 0o700)
			os.WriteFile(filepath.Join(w.DataDir, "store-volume.json"), []byte(`{"configured":"wrapix-builder-nix","volume":"someone-else"}`), 0o644)
		}, []string{"start"}, 3, []string{`names the store volume "someone-else"`, "wrapix-builder-nix-b"}},
		{"ssh when stopped", func(t *testing.T, w *testenv.World) { wb(t, "keys", "rotate") },
			[]string{"ssh", "true"}, 1, []string{"cannot connect to the builder", "wrapix-builder status"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := testenv.New(t)
			if tc.name == "port taken" {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(w.Port))
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
			}
			if tc.setup != nil {
				tc.setup(t, w)
			}
			before := snapshotDir(t, w.Home)
			start := time.Now()
			r := wb(t, tc.args...)
			oneErrorLine(t, r, tc.code, tc.wants...)
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %s: every call must be bounded", time.Since(start))
			}
			// Nothing the user had is lost: every file present before is still there, unchanged.
			after := snapshotDir(t, w.Home)
			for _, line := range strings.Split(before, "\n") {
				if line != "" && !strings.Contains(after, line) && !strings.Contains(line, "standin") {
					t.Errorf("changed or lost: %s", line)
				}
			}
		})
	}
}

func TestConfigOutputsUseTheRealHostKey(t *testing.T) {
	w := testenv.New(t)
	if r := wb(t, "keys", "rotate"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	pub, _ := os.ReadFile(filepath.Join(w.DataDir, "builder-keys", "host_ed25519.pub"))
	keyLine := strings.Join(strings.Fields(string(pub))[:2], " ")
	for _, f := range []string{"nix-darwin", "machines", "nix.conf", "determinate", "ssh-config", "known-hosts"} {
		r := wb(t, "config", "--format", f)
		if r.code != 0 || r.stdout == "" {
			t.Fatalf("%s: %d %s", f, r.code, r.stderr)
		}
		if f == "known-hosts" && !strings.Contains(r.stdout, "wrapix-builder "+keyLine) {
			t.Errorf("known-hosts lacks the host key:\n%s", r.stdout)
		}
		if f == "ssh-config" && !strings.Contains(r.stdout, "Port "+strconv.Itoa(w.NixPort)) { // serve's port, not the container's
			t.Errorf("ssh-config lacks the port:\n%s", r.stdout)
		}
	}
	if r := wb(t, "config"); !strings.Contains(r.stdout, "nix.buildMachines") {
		t.Error("default format is not nix-darwin")
	}
}

func TestSetupDryRunAndRootOverride(t *testing.T) {
	w := testenv.New(t)
	wb(t, "keys", "rotate")
	root := t.TempDir()
	r := wb(t, "setup", "--dry-run", "--root", root)
	if r.code != 0 || !strings.Contains(r.stdout, "/etc/nix/wrapix_builder_ed25519 (mode 0600)") {
		t.Fatalf("dry run: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatal("dry run wrote files")
	}
	if strings.Contains(r.stdout, "PRIVATE KEY") || !strings.Contains(r.stdout, "(the client private key, ") {
		t.Fatalf("dry run shows the private key or does not describe it:\n%s", r.stdout)
	}
	dryFiles := dryRunFiles(t, r.stdout)
	r = wb(t, "setup", "--root", root)
	if r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	// --dry-run showed the exact bytes setup then wrote, for every file but the key.
	if len(dryFiles) != 4 {
		t.Fatalf("dry run shows %d files, want 4 (known hosts, drop-in, machines, nix.conf):\n%v", len(dryFiles), dryFiles)
	}
	for path, want := range dryFiles {
		if got, _ := os.ReadFile(filepath.Join(root, path)); string(got) != want {
			t.Errorf("%s: dry run showed\n%q\nsetup wrote\n%q", path, want, got)
		}
	}
	key, _ := os.ReadFile(filepath.Join(root, "etc/nix/wrapix_builder_ed25519"))
	mine, _ := os.ReadFile(filepath.Join(w.DataDir, "builder-keys", "client_ed25519"))
	kr, errR := ssh.ParsePrivateKey(key) // re-encoded: the same key, not the same bytes
	km, errM := ssh.ParsePrivateKey(mine)
	if errR != nil || errM != nil || !bytes.Equal(kr.PublicKey().Marshal(), km.PublicKey().Marshal()) {
		t.Errorf("root's key is not the client key: %v %v", errR, errM)
	}
	if !strings.Contains(r.stderr, "skipped (--root") {
		t.Error("commands must not run against a --root tree")
	}
	if r := wb(t, "setup", "--undo", "--root", root); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatalf("undo left %v", entries)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	testenv.New(t)
	if r := wb(t, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "wrapix-builder ") {
		t.Fatalf("%+v", r)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := wb(t, "completion", sh); r.code != 0 || !strings.Contains(r.stdout, "wrapix-builder") {
			t.Fatalf("completion %s: %d %s", sh, r.code, r.stderr)
		}
	}
}

func TestRotateRefusedWhileRunning(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	if r := wb(t, "start"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	before := snapshotDir(t, filepath.Join(w.DataDir, "builder-keys"))
	oneErrorLine(t, wb(t, "keys", "rotate"), 9, "the builder is running", "wrapix-builder stop")
	if after := snapshotDir(t, filepath.Join(w.DataDir, "builder-keys")); after != before {
		t.Fatal("keys changed")
	}
}

// Two starts at the same moment (the CLI and the app) serialise on the lock:
// one runs the container, the other finds it running; nothing is corrupted.
func TestConcurrentStartsAreSerialised(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	bin := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < 3; i++ {
		cmd := exec.Command(bin, "start")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("start %d: %v\n%s", i, err, outs[i])
		}
	}
	if runs := w.CallsStarting("run"); len(runs) != 1 {
		t.Fatalf("%d runs for 3 concurrent starts", len(runs))
	}
	if r := wb(t, "status"); r.code != 0 {
		t.Fatalf("status after concurrent starts: %d\n%s", r.code, r.stdout)
	}
}

func TestDoctorAndLogs(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	r := wb(t, "doctor")
	if r.code != 5 || !strings.Contains(r.stdout, "[FAIL] SSH keys") || !strings.Contains(r.stdout, "fix: run `wrapix-builder start`") {
		t.Fatalf("doctor before start: %d\n%s", r.code, r.stdout)
	}
	if r := wb(t, "start"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	root := t.TempDir()
	r = wb(t, "doctor", "--root", root)
	if r.code != 10 || !strings.Contains(r.stdout, "[FAIL] root's SSH trust") || !strings.Contains(r.stdout, "sudo wrapix-builder setup") {
		t.Fatalf("doctor before setup: %d\n%s", r.code, r.stdout)
	}
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r = wb(t, "doctor", "--root", root)
	if r.code != 10 || !strings.Contains(r.stdout, "[FAIL] waker (wrapix-builder serve)") || !strings.Contains(r.stdout, "installs it as a login agent") {
		t.Fatalf("doctor without serve: %d\n%s", r.code, r.stdout)
	}
	w.Serve()
	r = wb(t, "doctor", "--json", "--root", root)
	var doc struct {
		Schema int
		Checks []struct{ Name, Result, Detail string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 {
		t.Fatalf("doctor after setup: %d %v\n%s", r.code, err, r.stdout)
	}
	results := map[string]string{}
	for _, c := range doc.Checks {
		results[c.Name] = c.Result
	}
	for _, name := range []string{"container CLI", "builder container", "published port", "SSH banner", "SSH as the user (pinned host key)", "nix-daemon on the builder", "root's SSH trust", "Nix builders entry", "waker (wrapix-builder serve)"} {
		if results[name] != "ok" {
			t.Errorf("%s: %q", name, results[name])
		}
	}
	r = wb(t, "logs")
	if r.code != 0 || !strings.Contains(r.stdout, "Server listening on 127.0.0.1 port ") { // sshd's, on the container side of the forwarder
		t.Fatalf("logs: %d %q %q", r.code, r.stdout, r.stderr)
	}
	wb(t, "stop")
	wb(t, "stop")
	oneErrorLine(t, wb(t, "logs"), 6, "no builder container")
}

// dryRunFiles reads back, from setup --dry-run's diffs, the content each file
// will have: the context and added lines, without the removed ones.
func dryRunFiles(t *testing.T, out string) map[string]string {
	t.Helper()
	files := map[string]string{}
	var path string
	var b strings.Builder
	lastKept := false // the line a "No newline" marker refers to is in the new file
	flush := func() {
		if path != "" {
			files[path] = b.String()
		}
		path = ""
		b.Reset()
	}
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "   +++ "):
			flush()
			path = strings.TrimPrefix(l, "   +++ ")
		case strings.HasPrefix(l, "   --- "), strings.HasPrefix(l, "   @@ "):
		case path != "" && l == `   \ No newline at end of file`:
			if lastKept {
				s := strings.TrimSuffix(b.String(), "\n")
				b.Reset()
				b.WriteString(s)
			}
		case path != "" && (strings.HasPrefix(l, "   +") || strings.HasPrefix(l, "    ")):
			b.WriteString(l[4:] + "\n")
			lastKept = true
		case path != "" && strings.HasPrefix(l, "   -"):
			lastKept = false
		default:
			flush()
		}
	}
	flush()
	return files
}

// doctor tells a serve that runs as another user, and a port held by
// another program, from a working serve.
func TestDoctorWakerChecks(t *testing.T) {
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	u, err := user.Lookup("builder")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	check := func() string {
		r := wb(t, "doctor")
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "waker (wrapix-builder serve)") {
				return l
			}
		}
		return ""
	}
	if l := check(); !strings.Contains(l, "[FAIL]") || !strings.Contains(l, "not running") {
		t.Fatalf("no serve: %q", l)
	}
	// A "serve" running as another user.
	other := exec.Command("sleep", "60")
	other.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: 0}}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	addr := "127.0.0.1:" + strconv.Itoa(w.NixPort)
	write := func(pid, uid int) {
		if err := wakestate.Write(w.DataDir, wakestate.State{PID: pid, UID: uid, Listen: addr}); err != nil {
			t.Fatal(err)
		}
	}
	write(other.Process.Pid, uid)
	if l := check(); !strings.Contains(l, "[FAIL]") || !strings.Contains(l, fmt.Sprintf("runs as uid %d, not as uid %d", uid, os.Getuid())) {
		t.Fatalf("serve as another user: %q", l)
	}
	// Our own user, but nothing listens; then another program (this test) holds the port.
	mine := exec.Command("sleep", "60")
	if err := mine.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { mine.Process.Kill(); mine.Wait() }()
	write(mine.Process.Pid, os.Getuid())
	if l := check(); !strings.Contains(l, "[FAIL]") || !strings.Contains(l, "nothing listens on "+addr) {
		t.Fatalf("serve without the port: %q", l)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if l := check(); !strings.Contains(l, "[FAIL]") || !strings.Contains(l, fmt.Sprintf("held by pid %d, not by serve (pid %d)", os.Getpid(), mine.Process.Pid)) {
		t.Fatalf("port held by another program: %q", l)
	}
}

// Apple's `run` attaches a volume that another running container holds
// (only `volume rm` checks, VolumesService.swift): doctor names the holder
// and its fix, as start's refusal does.
func TestDoctorNamesContainerHoldingTheStore(t *testing.T) {
	testenv.New(t)
	if out, err := exec.Command("container", "run", "--detach", "--name", "other", "--volume", "wrapix-builder-nix:/data", version.Image()).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	r := wb(t, "doctor")
	if !strings.Contains(r.stdout, "[FAIL] store") || !strings.Contains(r.stdout, "store volume wrapix-builder-nix is attached to the running container other") ||
		!strings.Contains(r.stdout, "container stop other") {
		t.Fatalf("doctor: %d\n%s", r.code, r.stdout)
	}
	if out, err := exec.Command("container", "stop", "other").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if r := wb(t, "doctor"); strings.Contains(r.stdout, "[FAIL] store") {
		t.Fatalf("doctor after the other container stopped: %d\n%s", r.code, r.stdout)
	}
}

// Setup started by the app's administrator prompt holds the app's
// lifeline (issue 17 point 8): when the app no longer waits (its prompt
// timed out, it quit), setup changes nothing; while it waits, setup runs.
func TestSetupHoldsTheAppsLifeline(t *testing.T) {
	testenv.New(t)
	wb(t, "keys", "rotate")
	root := t.TempDir()
	gone, err := lifeline.Listen()
	if err != nil {
		t.Fatal(err)
	}
	stale := gone.Path()
	gone.StopListening()
	r := wb(t, "setup", "--root", root, "--lifeline", stale)
	oneErrorLine(t, r, problem.ExitCodeOf(problem.Setup), "nothing was changed", "Run setup")
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Fatal("setup wrote files for an app that no longer waits")
	}

	live, err := lifeline.Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer live.StopListening()
	go func() {
		c := <-live.Connected()
		live.Accept(c)
	}()
	if r := wb(t, "setup", "--root", root, "--lifeline", live.Path()); r.code != 0 {
		t.Fatalf("setup with the app waiting: %s", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc", "nix", "machines")); err != nil {
		t.Errorf("setup with the app waiting wrote no machines file: %v", err)
	}
}
