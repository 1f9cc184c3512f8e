package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// A first `system start` whose kernel download breaks off leaves a running
// system without a kernel (the apiserver registers first). One
// `wrapix-builder start` must notice, install the kernel with progress, and
// reach ready; so must a start on a system already running without one.
func TestStartRepairsAnInterruptedKernel(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	for _, v := range []string{"1.2.2", "0.9.0", "0.6.0"} {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
			t.Setenv("CONTAINER_STANDIN_SYSTEM", "stopped")
			t.Setenv("CONTAINER_STANDIN_KERNEL", "missing")
			t.Setenv("CONTAINER_STANDIN_KERNEL_INTERRUPTS", "1")
			t.Setenv("CONTAINER_STANDIN_KERNEL_SECONDS", "5")
			tmp := filepath.Join(w.Home, "tmp")
			os.MkdirAll(tmp, 0o700)
			t.Setenv("TMPDIR", tmp)

			r := wb(t, "doctor")
			if !strings.Contains(r.stdout, "container system service") {
				t.Fatalf("doctor: %s %s", r.stdout, r.stderr)
			}
			r = wb(t, "start")
			if r.code != 0 || !strings.Contains(r.stdout, "ready at") {
				t.Fatalf("start after an interrupted kernel download: %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			all := r.stdout + r.stderr
			for _, want := range []string{"no Linux kernel", "downloading the Linux kernel: ", "Linux kernel installed"} {
				if !strings.Contains(all, want) {
					t.Errorf("start did not say %q:\n%s", want, all)
				}
			}
			if n := len(w.CallsStarting("system", "kernel", "set", "--recommended")); n != 1 {
				t.Errorf("kernel installs: %d", n)
			}
			if len(w.CallsStarting("run")) != 1 {
				t.Errorf("runs: %v", w.CallsStarting("run"))
			}
			r = wb(t, "doctor")
			if !strings.Contains(r.stdout, "Linux kernel") || strings.Contains(lineWith(r.stdout, "Linux kernel"), "FAIL") {
				t.Errorf("doctor after the repair:\n%s", r.stdout)
			}
		})
	}
}

// The system already runs (an earlier start was interrupted) but has no
// kernel: doctor names it with its fix, and start installs it before `run`.
func TestStartInstallsAMissingKernelBeforeRun(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_KERNEL", "missing")
	t.Setenv("CONTAINER_STANDIN_KERNEL_SECONDS", "1")
	r := wb(t, "doctor")
	if l := lineWith(r.stdout, "Linux kernel"); !strings.Contains(l, "FAIL") || !strings.Contains(r.stdout, "container system kernel set --recommended") {
		t.Errorf("doctor does not name the missing kernel and its fix:\n%s", r.stdout)
	}
	r = wb(t, "start")
	if r.code != 0 {
		t.Fatalf("start: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	calls := w.Calls()
	kernel, run := -1, -1
	for i, c := range calls {
		if hasArgs(c, "system", "kernel", "set", "--recommended") && kernel < 0 {
			kernel = i
		}
		if len(c) > 0 && c[0] == "run" && run < 0 {
			run = i
		}
	}
	if kernel < 0 || run < kernel {
		t.Errorf("the kernel was not installed before run: %v", calls)
	}
	if len(w.CallsStarting("system", "start")) != 0 {
		t.Errorf("a running system was started again: %v", w.CallsStarting("system", "start"))
	}
}

// A registered but hung apiserver: start must not run `system start` (it
// cannot help) and must name the fix for this case; after that fix, start
// works.
func TestStartOnAHungAPIServer(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_SYSTEM", "hung")
	t.Cleanup(func() { exec.Command("container", "system", "stop").Run() }) // before the world's `stop --all`, which would wait on the hung apiserver
	r := wb(t, "start")
	oneErrorLine(t, r, r.code, "registered but does not answer", "`container system stop`", "then `container system start`")
	if r.code == 0 {
		t.Fatal("start succeeded on a hung apiserver")
	}
	if n := len(w.CallsStarting("system", "start")); n != 0 {
		t.Errorf("start ran `system start` on a hung apiserver %d times", n)
	}
	r = wb(t, "doctor")
	if l := lineWith(r.stdout, "container system service"); !strings.Contains(l, "not answering") {
		t.Errorf("doctor on a hung apiserver:\n%s", r.stdout)
	}
	if out, err := exec.Command("container", "system", "stop").CombinedOutput(); err != nil {
		t.Fatalf("container system stop: %v %s", err, out)
	}
	r = wb(t, "start")
	if r.code != 0 || !strings.Contains(r.stdout, "ready at") {
		t.Fatalf("start after the fix: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// Until macOS allows container-runtime-linux on the local network, the
// forwarder resets every connection. start must say so within seconds of
// sshd running, with the click that fixes it, and go on by itself once it
// is allowed; left denied, it fails naming the same fix.
func TestStartWaitsForLocalNetworkPermission(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_LOCALNET", "denied")

	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "start")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var said, ready time.Duration
	var all strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		l := sc.Text()
		all.WriteString(l + "\n")
		switch {
		case said == 0 && strings.Contains(l, "Local Network") && strings.Contains(l, "container-runtime-linux"):
			said = time.Since(t0)
			if err := os.Remove(filepath.Join(w.StandinDir, "local-network-denied")); err != nil { // the user's click
				t.Fatal(err)
			}
		case strings.Contains(l, "ready at"):
			ready = time.Since(t0)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("start: %v\n%s\n%s", err, all.String(), logs(w))
	}
	if said == 0 || said > 15*time.Second {
		t.Fatalf("the missing permission was not named within 15 s (%s):\n%s", said, all.String())
	}
	if ready == 0 || !strings.Contains(all.String(), "System Settings → Privacy & Security → Local Network") {
		t.Fatalf("start did not go on once allowed:\n%s", all.String())
	}
	t.Logf("permission named after %s, ready %s after the grant", said.Round(time.Millisecond), (ready - said).Round(time.Millisecond))
}

func TestStartFailsNamingLocalNetworkPermission(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_LOCALNET", "denied")
	r := wb(t, "start")
	oneErrorLine(t, r, r.code, "Local Network", "container-runtime-linux", "every connection to 127.0.0.1:")
	if r.code == 0 {
		t.Fatal("start succeeded while every connection was reset")
	}
}

func logs(w *testenv.World) string {
	out, _ := exec.Command("container", "logs", "wrapix-builder").CombinedOutput()
	fwd, _ := os.ReadFile(filepath.Join(w.StandinDir, "logs", "wrapix-builder.log.forwarder"))
	return string(out) + "\nforwarder:\n" + string(fwd)
}

// With the permission withdrawn from a running builder, doctor's banner
// check names it (the reset can beat connect() itself: not "nothing listens").
func TestDoctorNamesLocalNetworkPermission(t *testing.T) {
	testenv.Require(t, "sshd", "nix-daemon")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	if r := wb(t, "start"); r.code != 0 {
		t.Fatalf("start: %d %s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(w.StandinDir, "local-network-denied"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r := wb(t, "doctor")
		if l := lineWith(r.stdout, "SSH banner"); !strings.Contains(l, "FAIL") || !strings.Contains(r.stdout, "Local Network") || strings.Contains(r.stdout, "nothing listens") {
			t.Fatalf("doctor with the permission missing:\n%s", r.stdout)
		}
	}
}
