package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// The app shows build activity end to end: the builder runs the project's
// entrypoint in the stand-in's e2e mode, a separate host-side Nix builds two
// derivations at once and one that fails. The menu over D-Bus shows them
// while they run and after; the failed build gives one notification whose
// click opens a terminal on its log, as its menu entry does; a build longer
// than notify-after is notified when it finishes, a short one is not.
func TestAppShowsBuildActivity(t *testing.T) {
	w := testenv.New(t)
	testenv.Require(t, "dbus-daemon")
	w.E2E(testenv.Image(t, nil))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\nnotify-after = \"6s\"\n")
	w.Serve() // Nix connects to port, which `serve` owns (docs/on-demand.md)
	cli := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	if out, err := exec.Command(cli, "start").CombinedOutput(); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	addr, b := startBus(t)
	appBin := buildApp(t)
	fakes := t.TempDir()
	termLog := filepath.Join(fakes, "terminal.argv")
	os.WriteFile(filepath.Join(fakes, "x-terminal-emulator"), []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" >> '"+termLog+"'\necho >> '"+termLog+"'\n"), 0o755)
	var app *exec.Cmd
	startApp := func() {
		app = exec.Command(appBin, "--cli", cli)
		app.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr, "PATH="+fakes+":"+os.Getenv("PATH"), "DISPLAY=", "WAYLAND_DISPLAY=")
		var appOut strings.Builder
		app.Stdout, app.Stderr = &appOut, &appOut
		if err := app.Start(); err != nil {
			t.Fatal(err)
		}
		self := app
		t.Cleanup(func() {
			self.Process.Kill()
			self.Wait()
			if t.Failed() {
				t.Logf("app output:\n%s", appOut.String())
			}
		})
	}
	startApp()
	ready := func(items []menuItem) bool {
		return statusIs("Builder: ready")(items) || statusIs("Builder: idle")(items)
	}
	b.waitMenu(t, 30*time.Second, "ready", nil, ready)
	if _, ok := find(b.layout(t), "No builds running"); !ok {
		t.Errorf("no builds line while idle: %+v", b.layout(t))
	}

	h := testenv.NewNixHost(t)
	short := h.Derivation("app-short", `sleep 3; echo short $RANDOM > $out`)
	long := h.Derivation("app-long", `sleep 14; echo long $RANDOM > $out`)
	broken := h.Derivation("app-broken", `echo "app-broken went wrong"; sleep 2; exit 4`)
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	for name, drv := range map[string]string{"short": short, "long": long} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := h.Build(name, drv, 90*time.Second)
			mu.Lock()
			if err != nil {
				errs[name] = &buildErr{err, out}
			}
			mu.Unlock()
		}()
	}
	// While both run: the section lists them, the icon says busy.
	b.waitMenu(t, 30*time.Second, "both builds running", nil, func(items []menuItem) bool {
		_, h1 := find(items, "Building 2 derivations:")
		_, a := find(items, "    app-short — ")
		_, l := find(items, "    app-long — ")
		return h1 && a && l
	})
	// Once the short one is done nothing happens until the long one ends: its
	// elapsed time still ticks while the menu is open.
	b.waitMenu(t, 30*time.Second, "short build done", nil, func(items []menuItem) bool { _, ok := find(items, "✓ app-short — "); return ok })
	b.openMenu(t)
	labels := map[string]bool{}
	for deadline := time.Now().Add(3500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if it, ok := find(b.layout(t), "    app-long — "); ok {
			labels[it.label] = true
		}
	}
	if len(labels) < 2 {
		t.Errorf("the running build's elapsed time did not tick while the menu was open: %v", labels)
	}
	wg.Wait()
	for name, err := range errs {
		t.Fatalf("%s: %v", name, err)
	}
	if out, err := h.Build("broken", broken, 60*time.Second); err == nil {
		t.Fatalf("the broken build succeeded:\n%s", out)
	}
	// After: the finished ones, newest first, with their outcome.
	items := b.waitMenu(t, 20*time.Second, "finished builds", nil, func(items []menuItem) bool {
		_, f := find(items, "✗ app-broken — ")
		_, s := find(items, "✓ app-short — ")
		_, l := find(items, "✓ app-long — ")
		_, idle := find(items, "No builds running")
		return f && s && l && idle
	})
	var finished []string
	for _, it := range items {
		if it.visible && (strings.HasPrefix(it.label, "✓") || strings.HasPrefix(it.label, "✗")) {
			finished = append(finished, it.label)
		}
	}
	if len(finished) != 3 || !strings.HasPrefix(finished[0], "✗ app-broken") || !strings.HasSuffix(finished[0], "(show log)") {
		t.Errorf("finished entries %q", finished)
	}

	// One failure notification; its click opens the log in a terminal.
	waitFor(t, 10*time.Second, "failure notification", func() bool { return b.notified("Build failed: app-broken") })
	waitFor(t, 10*time.Second, "long build notification", func() bool { return b.notified("Build finished: app-long") })
	time.Sleep(500 * time.Millisecond)
	if n := countNotified(b, "Build failed: app-broken"); n != 1 {
		t.Errorf("%d failure notifications", n)
	}
	if countNotified(b, "Build finished: app-short") != 0 {
		t.Error("a build shorter than notify-after was notified")
	}
	var id uint32
	b.mu.Lock()
	for i, s := range b.sent {
		if strings.HasPrefix(s, "Build failed: app-broken") {
			id = uint32(i + 1)
		}
	}
	acts := b.acts[id]
	b.mu.Unlock()
	if len(acts) < 2 || acts[0] != "default" {
		t.Fatalf("the failure notification has no default action: %q", acts)
	}
	drv := buildDrv(t, cli, "app-broken")
	if err := b.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", id, "default"); err != nil {
		t.Fatal(err)
	}
	want := "-e\x00" + cli + "\x00--data-dir\x00" + w.DataDir + "\x00--config-dir\x00" + w.ConfigDir + "\x00builds\x00--log\x00" + drv + "\x00\n"
	waitFor(t, 5*time.Second, "terminal from the notification", func() bool { data, _ := os.ReadFile(termLog); return string(data) == want })
	// The menu entry does the same.
	b.click(t, "✗ app-broken")
	waitFor(t, 5*time.Second, "terminal from the menu", func() bool { data, _ := os.ReadFile(termLog); return string(data) == want+want })
	// History survives a restart of the app, and nothing is notified again.
	app.Process.Kill()
	app.Wait()
	b.mu.Lock()
	b.item = ""
	b.mu.Unlock()
	startApp()
	b.waitMenu(t, 30*time.Second, "history after the app's restart", nil, func(items []menuItem) bool {
		_, f := find(items, "✗ app-broken — ")
		_, l := find(items, "✓ app-long — ")
		return f && l
	})
	time.Sleep(time.Second)
	if n := countNotified(b, "Build failed: app-broken"); n != 1 {
		t.Errorf("%d failure notifications after the app's restart", n)
	}
	// And that command prints the build's own output.
	if out, err := exec.Command(cli, "builds", "--log", drv).CombinedOutput(); err != nil || !strings.Contains(string(out), "app-broken went wrong") {
		t.Fatalf("builds --log: %v %s", err, out)
	}
}

type buildErr struct {
	err error
	out string
}

func (e *buildErr) Error() string { return e.err.Error() + "\n" + e.out }

// buildDrv is the derivation path of the newest build called name.
func buildDrv(t *testing.T, cli, name string) string {
	t.Helper()
	out, err := exec.Command(cli, "builds").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[1] == name {
			return f[len(f)-1]
		}
	}
	t.Fatalf("no %s in\n%s", name, out)
	return ""
}

// A compromised builder floods the event log (issue 16, points 8 and 9):
// 3000 failed builds, and events whose paths carry an escape sequence, a
// line break and a bidi override. The app tells the failures in at most a
// few notifications ("2999 builds failed") and shows none of the hostile
// events, in the menu or a notification.
func TestAppCoalescesBuildNotifications(t *testing.T) {
	w := testenv.New(t)
	testenv.Require(t, "dbus-daemon")
	w.E2E(testenv.Image(t, nil))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	cli := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	if out, err := exec.Command(cli, "start").CombinedOutput(); err != nil {
		t.Fatalf("start: %v %s", err, out)
	}
	addr, b := startBus(t)
	app := exec.Command(buildApp(t), "--cli", cli)
	app.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr, "DISPLAY=", "WAYLAND_DISPLAY=")
	var appOut strings.Builder
	app.Stdout, app.Stderr = &appOut, &appOut
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		app.Process.Kill()
		app.Wait()
		if t.Failed() {
			t.Logf("app output:\n%s", appOut.String())
		}
	})
	logPath := filepath.Join(w.StandinDir, "volumes/wrapix-builder-nix/data/var/wrapix/builds.log")
	appendLog := func(text string) {
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	// Once the menu shows a build, the app follows the log: what comes after is news.
	appendLog(`{"event":"start","drv":"/nix/store/cccccccccccccccccccccccccccccccc-flood-gate.drv","time":1}` + "\n")
	b.waitMenu(t, 30*time.Second, "following builds", nil, func(items []menuItem) bool { _, ok := find(items, "Building 1 derivation:"); return ok })

	var sb strings.Builder
	const hash = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	for i, name := range []string{`x\u001b]0;pwned\u0007`, `line\npwned`, `evil\u202epwned`} {
		fmt.Fprintf(&sb, `{"event":"start","drv":"/nix/store/%s-%s.drv","time":%d}`+"\n", hash, name, 100+i)
		fmt.Fprintf(&sb, `{"event":"failure","drv":"/nix/store/%s-%s.drv","time":%d}`+"\n", hash, name, 101+i)
	}
	const n = 3000
	for i := 0; i < n; i++ {
		num := strconv.Itoa(i)
		drv := "/nix/store/" + strings.Repeat("a", 32-len(num)) + num + "-flood-" + num + ".drv"
		fmt.Fprintf(&sb, `{"event":"start","drv":"%s","time":%d}`+"\n", drv, 1000+i)
		fmt.Fprintf(&sb, `{"event":"failure","drv":"%s","time":%d}`+"\n", drv, 1001+i)
	}
	appendLog(sb.String())

	// Every failure is told, one way or the other.
	told := func() (builds, notes int) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, s := range b.sent {
			var k int
			switch {
			case strings.HasPrefix(s, "Build failed: flood-"):
				builds++
			case strings.Contains(s, " builds failed"):
				if _, err := fmt.Sscanf(s, "%d builds failed", &k); err == nil {
					builds += k
				}
			default:
				continue
			}
			notes++
		}
		return builds, notes
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, _ := told(); got >= n {
			break
		}
	}
	time.Sleep(time.Second) // nothing more arrives
	got, notes := told()
	t.Logf("%d failures told in %d notifications", got, notes)
	if got != n || notes > 4 {
		t.Errorf("%d failures told in %d notifications, want %d in at most 4", got, notes, n)
	}
	b.mu.Lock()
	for _, s := range b.sent {
		if strings.Contains(s, "pwned") {
			t.Errorf("notification of a hostile event: %q", s)
		}
	}
	b.mu.Unlock()
	for _, it := range b.layout(t) {
		if strings.Contains(it.label, "pwned") || strings.ContainsAny(it.label, "\x1b\n\u202e") {
			t.Errorf("menu item %q", it.label)
		}
	}
}
