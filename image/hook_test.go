package image

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// postBuildHook is the hook script the entrypoint writes, with its state
// directory moved under dir (the only change).
func postBuildHook(t testing.TB, dir string) string {
	t.Helper()
	data, err := os.ReadFile("entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "<<'HOOK'\n")
	j := strings.Index(s, "\nHOOK\n")
	if i < 0 || j < i {
		t.Fatal("entrypoint.sh has no post-build hook here-document")
	}
	hook := filepath.Join(dir, "hook")
	body := strings.ReplaceAll(s[i+len("<<'HOOK'\n"):j+1], "/nix/var/wrapix", filepath.Join(dir, "wrapix"))
	if err := os.WriteFile(hook, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return hook
}

// hookShell is the shell the hook runs with in the tests' builder: Debian's
// dynamically linked busybox (as nixpkgs' is), else the host's.
func hookShell() string {
	if _, err := os.Stat(testenv.DebianBusybox); err == nil {
		return testenv.DebianBusybox
	}
	return "busybox"
}

func runHook(hook string) ([]byte, error) {
	cmd := exec.Command(hookShell(), "sh", hook)
	cmd.Env = []string{"PATH=/bin:/usr/bin", "DRV_PATH=/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello.drv",
		"OUT_PATHS=/nix/store/cccccccccccccccccccccccccccccccc-hello /nix/store/dddddddddddddddddddddddddddddddd-hello-doc"}
	return cmd.CombinedOutput()
}

// The hook records a success as one JSON line; broken or missing state
// makes it print nothing and exit 0 all the same (Nix would fail the build
// on a failing hook, and parse nothing it prints).
func TestPostBuildHook(t *testing.T) {
	dir := t.TempDir()
	hook := postBuildHook(t, dir)
	if out, err := runHook(hook); err != nil || len(out) != 0 {
		t.Fatalf("without its directory: %v %q", err, out)
	}
	os.MkdirAll(filepath.Join(dir, "wrapix/done"), 0o755)
	os.MkdirAll(filepath.Join(dir, "wrapix/running"), 0o755)
	if out, err := runHook(hook); err != nil || len(out) != 0 {
		t.Fatalf("%v %q", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "wrapix/builds.log"))
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"event":"start"`) ||
		!strings.Contains(lines[1], `"outputs":["/nix/store/cccccccccccccccccccccccccccccccc-hello","/nix/store/dddddddddddddddddddddddddddddddd-hello-doc"]`) {
		t.Fatalf("log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dir, "wrapix/done/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello.drv")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "wrapix/done"))
	os.WriteFile(filepath.Join(dir, "wrapix/done"), nil, 0o644)
	os.Chmod(filepath.Join(dir, "wrapix/builds.log"), 0o000)
	if out, err := runHook(hook); err != nil || len(out) != 0 {
		t.Fatalf("with broken state: %v %q", err, out)
	}
}

// BenchmarkPostBuildHook: what the hook adds to each successful build (Nix
// waits for it), against the cheapest possible hook (`exit 0` in the same
// shell) and against no hook at all (Nix then spawns nothing: 0).
// Goal: hook − no hook < 5 ms.
func BenchmarkPostBuildHook(b *testing.B) {
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "wrapix/done"), 0o755)
	os.MkdirAll(filepath.Join(dir, "wrapix/running"), 0o755)
	hook := postBuildHook(b, dir)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	for _, c := range []struct{ name, script string }{{"empty-hook", empty}, {"wrapix-hook", hook}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if out, err := runHook(c.script); err != nil {
					b.Fatalf("%v %s", err, out)
				}
			}
		})
	}
}

// watcher is the entrypoint's build-activity block (event log, builds_tick)
// with its paths moved under dir: the store's state, Nix's log directory,
// the build directories and the stamp.
func watcher(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile("entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i := strings.Index(s, "# Build activity (docs/builds.md)")
	j := strings.Index(s, "# 4. The services")
	if i < 0 || j < i {
		t.Fatal("entrypoint.sh has no build-activity block before its services")
	}
	return strings.NewReplacer("/nix/var/wrapix", dir+"/wrapix", "/nix/var/log/nix/drvs", dir+"/logs",
		`"${TMPDIR:-/tmp} /nix/var/nix/builds"`, `"`+dir+`/tmp `+dir+`/builds"`, "/run/wrapix/builds-stamp", dir+"/stamp").Replace(s[i:j])
}

// The loop's tick sees builds start and end by their build directories
// (both namings: Nix < 2.30 under $TMPDIR, ≥ 2.30 under build-dir with the
// daemon's pid), maps them to their derivation through Nix's new build log,
// and closes them as failed unless the hook recorded a success; a build
// that starts and fails between two ticks is found by its new build log;
// builds still open at the next start are closed as interrupted.
func TestBuildWatcher(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tmp", "builds", "logs/ab", "logs/cd"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	hook := postBuildHook(t, dir)
	script := "set -eu\n" + watcher(t, dir) + `
sleep 1.1   # the stamp is in the past
mkdir "$D/tmp/nix-build-hello-2.12.drv-0" "$D/builds/nix-build-broken.drv-4242-17" "$D/tmp/nix-build-not-hello-2.12.drv-3"
echo > "$D/logs/ab/cccccccccccccccccccccccccccccc-hello-2.12.drv.bz2"
echo > "$D/logs/cd/dddddddddddddddddddddddddddddd-broken.drv.bz2"
echo > "$D/logs/cd/eeeeeeeeeeeeeeeeeeeeeeeeeeeeee-not-hello-2.12.drv.bz2"
builds_tick || true
builds_tick || true
DRV_PATH=/nix/store/abcccccccccccccccccccccccccccccc-hello-2.12.drv OUT_PATHS= ` + hookShell() + ` sh "$HOOK"
rmdir "$D/tmp/nix-build-hello-2.12.drv-0" "$D/builds/nix-build-broken.drv-4242-17" "$D/tmp/nix-build-not-hello-2.12.drv-3"
builds_tick || true
mkdir "$D/tmp/nix-build-slow.drv-1"
echo > "$D/logs/ab/ffffffffffffffffffffffffffffff-slow.drv"
sleep 1.1
builds_tick || true
sleep 1.1   # a build that starts and fails between two ticks
mkdir "$D/tmp/nix-build-quick.drv-2"
mkdir -p "$D/logs/gg"
echo > "$D/logs/gg/gggggggggggggggggggggggggggggg-quick.drv.bz2"
rmdir "$D/tmp/nix-build-quick.drv-2"
builds_tick || true
builds_tick || true
`
	cmd := exec.Command(hookShell(), "sh", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "D=" + dir, "HOOK=" + hook}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The next start: slow was still running.
	cmd = exec.Command(hookShell(), "sh", "-c", "set -eu\n"+watcher(t, dir))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "wrapix/builds.log"))
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		var e struct{ Event, Drv string }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		got = append(got, e.Event+" "+e.Drv)
	}
	want := []string{
		"start /nix/store/abcccccccccccccccccccccccccccccc-hello-2.12.drv",
		"start /nix/store/cdeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-not-hello-2.12.drv", // a look-alike name, its own build
		"start /nix/store/cddddddddddddddddddddddddddddddd-broken.drv",
		"success /nix/store/abcccccccccccccccccccccccccccccc-hello-2.12.drv",
		"failure /nix/store/cddddddddddddddddddddddddddddddd-broken.drv",
		"failure /nix/store/cdeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-not-hello-2.12.drv",
		"start /nix/store/abffffffffffffffffffffffffffffff-slow.drv",
		"start /nix/store/gggggggggggggggggggggggggggggggg-quick.drv",
		"failure /nix/store/gggggggggggggggggggggggggggggggg-quick.drv",
		"interrupted /nix/store/abffffffffffffffffffffffffffffff-slow.drv",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
