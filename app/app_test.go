package main

// End-to-end test of the real app binary on Linux: a private dbus-daemon, a
// StatusNotifierWatcher and a notification service (this test, on the bus),
// the container stand-in running a real sshd, Xvfb for the clipboard. The
// menu is driven over com.canonical.dbusmenu like a desktop shell would.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/wrapix/wrapix-builder/builder/lifeline"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// bus is the test's side of the session bus.
type bus struct {
	conn *dbus.Conn
	mu   sync.Mutex
	item string              // the StatusNotifierItem's bus name
	sent []string            // notifications: summary + "\n" + body
	acts map[uint32][]string // the actions of notification N (its id)
}

// RegisterStatusNotifierItem is org.kde.StatusNotifierWatcher's method.
func (b *bus) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if strings.HasPrefix(service, "/") {
		service = string(sender)
	}
	b.item = service
	return nil
}

func (b *bus) RegisterStatusNotifierHost(string) *dbus.Error { return nil }

type notifications struct{ b *bus }

// Notify is org.freedesktop.Notifications' method.
func (n notifications) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	n.b.mu.Lock()
	defer n.b.mu.Unlock()
	n.b.sent = append(n.b.sent, summary+"\n"+body)
	if n.b.acts == nil {
		n.b.acts = map[uint32][]string{}
	}
	n.b.acts[uint32(len(n.b.sent))] = actions
	return uint32(len(n.b.sent)), nil
}

func (n notifications) GetCapabilities() ([]string, *dbus.Error) { return []string{"body"}, nil }

func (b *bus) notified(prefix string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sent {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func startBus(t testing.TB) (string, *bus) {
	t.Helper()
	testenv.Require(t, "dbus-daemon")
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	b := &bus{conn: conn}
	if err := conn.Export(b, "/StatusNotifierWatcher", "org.kde.StatusNotifierWatcher"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(notifications{b}, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"org.kde.StatusNotifierWatcher", "org.freedesktop.Notifications"} {
		if reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("request %s: %v %v", name, reply, err)
		}
	}
	return addr, b
}

func startXvfb(t testing.TB) string {
	t.Helper()
	testenv.Require(t, "Xvfb", "xclip")
	for n := 90; n < 120; n++ {
		if displayInUse(n) {
			continue
		}
		display := ":" + strconv.Itoa(n)
		cmd := exec.Command("Xvfb", display, "-screen", "0", "320x240x24", "-nolisten", "tcp")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// SIGTERM: Xvfb removes its lock and socket (a SIGKILL left them
		// behind, and after 30 runs no display looked free).
		t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
		for i := 0; i < 100; i++ {
			if _, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n)); err == nil {
				return display
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("Xvfb did not start")
	}
	t.Fatal("no free X display")
	return ""
}

// displayInUse: an X server holds display n (its lock file names a live
// process; a stale lock and socket are reclaimed by the next Xvfb).
func displayInUse(n int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/tmp/.X%d-lock", n))
	if err != nil {
		_, err := os.Stat(fmt.Sprintf("/tmp/.X11-unix/X%d", n))
		return err == nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return err != nil || syscall.Kill(pid, 0) == nil
}

// menuItem is one entry of the dbusmenu layout.
type menuItem struct {
	id      int32
	label   string
	enabled bool
	visible bool
	checked bool
}

type layoutNode struct {
	ID       int32
	Props    map[string]dbus.Variant
	Children []dbus.Variant
}

func (b *bus) layout(t testing.TB) []menuItem {
	t.Helper()
	b.mu.Lock()
	item := b.item
	b.mu.Unlock()
	if item == "" {
		return nil
	}
	sni := b.conn.Object(item, "/StatusNotifierItem")
	v, err := sni.GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		return nil
	}
	menuObj := b.conn.Object(item, v.Value().(dbus.ObjectPath))
	var rev uint32
	var root layoutNode
	if err := menuObj.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &root); err != nil {
		return nil
	}
	var out []menuItem
	for _, c := range root.Children {
		var n layoutNode
		if err := dbus.Store([]interface{}{c.Value()}, &n); err != nil {
			continue
		}
		mi := menuItem{id: n.ID, enabled: true, visible: true}
		if l, ok := n.Props["label"]; ok {
			mi.label, _ = l.Value().(string)
		}
		if e, ok := n.Props["enabled"]; ok {
			mi.enabled, _ = e.Value().(bool)
		}
		if e, ok := n.Props["visible"]; ok {
			mi.visible, _ = e.Value().(bool)
		}
		if e, ok := n.Props["toggle-state"]; ok {
			s, _ := e.Value().(int32)
			mi.checked = s == 1
		}
		out = append(out, mi)
	}
	return out
}

func find(items []menuItem, prefix string) (menuItem, bool) {
	for _, it := range items {
		if strings.HasPrefix(it.label, prefix) && it.visible {
			return it, true
		}
	}
	return menuItem{}, false
}

// waitMenu polls the layout until cond holds, recording status labels seen.
func (b *bus) waitMenu(t testing.TB, d time.Duration, what string, seen map[string]bool, cond func([]menuItem) bool) []menuItem {
	t.Helper()
	deadline := time.Now().Add(d)
	var items []menuItem
	for time.Now().Before(deadline) {
		items = b.layout(t)
		if s, ok := find(items, "Builder:"); ok && seen != nil {
			seen[s.label] = true
		}
		if len(items) > 0 && cond(items) {
			return items
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("menu never showed %s; last layout: %+v", what, items)
	return nil
}

func (b *bus) click(t testing.TB, label string) {
	t.Helper()
	items := b.layout(t)
	it, ok := find(items, label)
	if !ok || !it.enabled {
		t.Fatalf("%q not clickable in %+v", label, items)
	}
	b.mu.Lock()
	item := b.item
	b.mu.Unlock()
	v, _ := b.conn.Object(item, "/StatusNotifierItem").GetProperty("org.kde.StatusNotifierItem.Menu")
	call := b.conn.Object(item, v.Value().(dbus.ObjectPath)).Call("com.canonical.dbusmenu.Event", 0, it.id, "clicked", dbus.MakeVariant(""), uint32(time.Now().Unix()))
	if call.Err != nil && !(label == "Quit" && quitBeforeReply(call.Err)) {
		t.Fatalf("click %q: %v", label, call.Err)
	}
}

func statusIs(prefix string) func([]menuItem) bool {
	return func(items []menuItem) bool {
		s, ok := find(items, "Builder:")
		return ok && strings.HasPrefix(s.label, prefix)
	}
}

func TestAppOverDBus(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	// A home a shell would choke on, unless every argument is quoted.
	home := filepath.Join(w.Home, "o'brien $(touch pwned)", "x")
	os.MkdirAll(home, 0o755)
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, ".local/share"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	w.DataDir, w.ConfigDir = filepath.Join(home, ".local/share/wrapix"), filepath.Join(home, ".config/wrapix")
	w.WriteConfig("")
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")

	addr, b := startBus(t)
	display := startXvfb(t)
	bin := testenv.Binaries(t)
	appBin := buildApp(t)
	// pkexec stand-in: records the argv it was given, runs nothing.
	fakes := t.TempDir()
	pkexecLog := filepath.Join(fakes, "pkexec.argv")
	os.WriteFile(filepath.Join(fakes, "pkexec"), []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" > '"+pkexecLog+"'\n"), 0o755)
	termLog := filepath.Join(fakes, "terminal.argv")
	os.WriteFile(filepath.Join(fakes, "x-terminal-emulator"), []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" >> '"+termLog+"'\necho >> '"+termLog+"'\n"), 0o755)
	env := append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr, "DISPLAY="+display, "PATH="+fakes+":"+os.Getenv("PATH"), "WAYLAND_DISPLAY=")
	cli := filepath.Join(bin, "wrapix-builder")
	app := exec.Command(appBin, "--cli", cli)
	app.Env = env
	app.Dir = w.Home
	var appOut strings.Builder
	app.Stdout, app.Stderr = &appOut, &appOut
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- app.Wait() }()
	t.Cleanup(func() {
		app.Process.Kill()
		if t.Failed() {
			t.Logf("app output:\n%s", appOut.String())
		}
	})

	// The layout matches the state: stopped, Start enabled, Stop not.
	items := b.waitMenu(t, 15*time.Second, "stopped", nil, statusIs("Builder: stopped"))
	if s, _ := find(items, "Stop"); s.enabled {
		t.Error("Stop enabled while stopped")
	}
	for _, label := range []string{"Start", "Restart", "Reclaim disk space…", "Copy nix-darwin config", "Run setup", "Open shell", "Show logs", "Start at login", "Quit"} {
		if _, ok := find(items, label); !ok {
			t.Errorf("menu lacks %q", label)
		}
	}

	// Start: the stand-in sees the right run; the labels go starting → ready.
	seen := map[string]bool{}
	b.click(t, "Start")
	items = b.waitMenu(t, 30*time.Second, "ready", seen, statusIs("Builder: ready at 127.0.0.1:"+strconv.Itoa(w.Port)))
	if !seen["Builder: starting…"] {
		t.Errorf("never showed starting: %v", seen)
	}
	runs := w.CallsStarting("run")
	if len(runs) != 1 || !strings.Contains(strings.Join(runs[0], " "), "--publish 127.0.0.1:"+strconv.Itoa(w.Port)+":22/tcp") {
		t.Fatalf("stand-in runs: %v", runs)
	}
	if s, _ := find(items, "Stop"); !s.enabled {
		t.Error("Stop disabled while ready")
	}
	waitFor(t, 5*time.Second, "ready notification", func() bool { return b.notified("Wrapix Builder is ready") })

	// Copy nix-darwin config: exactly what `wrapix-builder config` prints.
	b.click(t, "Copy nix-darwin config")
	want, err := exec.Command(cli, "config").Output()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "clipboard", func() bool {
		cmd := exec.Command("xclip", "-selection", "clipboard", "-o")
		cmd.Env = env
		got, _ := cmd.Output()
		return string(got) == string(want)
	})

	// Killing the builder from outside turns the menu to stopped and notifies, within 2 s.
	t0 := time.Now()
	if out, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	b.waitMenu(t, 2*time.Second, "stopped after the kill", nil, statusIs("Builder: stopped"))
	waitFor(t, 2*time.Second-time.Since(t0), "stopped notification", func() bool { return b.notified("Wrapix Builder stopped unexpectedly") }, b)
	t.Logf("builder death → menu + notification in %s", time.Since(t0))

	// A CLI start while the app runs shows in the menu without a click.
	if out, err := exec.Command(cli, "start").CombinedOutput(); err != nil {
		t.Fatalf("cli start: %v %s", err, out)
	}
	b.waitMenu(t, 5*time.Second, "ready after a CLI start", nil, statusIs("Builder: ready"))

	// Open shell and Show logs open a terminal running the CLI with this user's directories.
	b.click(t, "Open shell")
	b.click(t, "Show logs")
	waitFor(t, 5*time.Second, "terminal", func() bool { data, _ := os.ReadFile(termLog); return strings.Count(string(data), "\n") >= 2 })
	termRaw, _ := os.ReadFile(termLog)
	base := "-e\x00" + cli + "\x00--data-dir\x00" + w.DataDir + "\x00--config-dir\x00" + w.ConfigDir + "\x00"
	// Each click's action runs in its own goroutine: the two may open in either order.
	if want, rev := base+"ssh\x00\n"+base+"logs\x00--follow\x00\n", base+"logs\x00--follow\x00\n"+base+"ssh\x00\n"; string(termRaw) != want && string(termRaw) != rev {
		t.Fatalf("terminal argv %q\nwant %q", termRaw, want)
	}

	// Stop from the menu: stopped, and no "unexpectedly".
	before := countNotified(b, "Wrapix Builder stopped unexpectedly")
	b.click(t, "Stop")
	b.waitMenu(t, 20*time.Second, "stopped", nil, statusIs("Builder: stopped"))
	time.Sleep(300 * time.Millisecond)
	if countNotified(b, "Wrapix Builder stopped unexpectedly") != before {
		t.Error("a requested stop was reported as unexpected")
	}

	// Run setup: pkexec gets the CLI and this user's directories as separate arguments.
	b.click(t, "Run setup")
	waitFor(t, 5*time.Second, "pkexec", func() bool { _, err := os.Stat(pkexecLog); return err == nil })
	raw, _ := os.ReadFile(pkexecLog)
	got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	// The last two: the app's lifeline (issue 17 point 8), a socket path.
	wantArgv := []string{cli, "--data-dir", w.DataDir, "--config-dir", w.ConfigDir, "setup", "--for-uid", strconv.Itoa(os.Getuid()), lifeline.Flag}
	if len(got) != len(wantArgv)+1 || strings.Join(got[:len(wantArgv)], "|") != strings.Join(wantArgv, "|") || !filepath.IsAbs(got[len(got)-1]) {
		t.Fatalf("pkexec argv %q, want %q and a socket path", got, wantArgv)
	}
	waitFor(t, 5*time.Second, "setup notification", func() bool { return b.notified("Wrapix Builder setup done") }, b)
	filepath.Walk(w.Home, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Name() == "pwned" {
			t.Errorf("something executed the home directory's name: %s", p)
		}
		return nil
	})

	// A failing setup shows its error; a dismissed prompt (pkexec exits
	// 126) is no failure: no notification, no problem icon, and the earlier
	// error line goes.
	stoppedIcon := b.icon(t)
	pkexecCalls := filepath.Join(fakes, "pkexec.calls")
	os.WriteFile(filepath.Join(fakes, "pkexec"), []byte("#!/bin/sh\necho x >> '"+pkexecCalls+"'\necho 'setup: something broke' >&2\nexit 1\n"), 0o755)
	b.click(t, "Run setup")
	waitFor(t, 5*time.Second, "setup failure notification", func() bool { return b.notified("Setup failed") }, b)
	b.waitMenu(t, 5*time.Second, "the error line", nil, func(items []menuItem) bool { _, ok := find(items, "Error: Setup failed"); return ok })
	failures := countNotified(b, "Setup failed")
	os.WriteFile(filepath.Join(fakes, "pkexec"), []byte("#!/bin/sh\necho x >> '"+pkexecCalls+"'\nexit 126\n"), 0o755)
	b.click(t, "Run setup")
	waitFor(t, 5*time.Second, "the second prompt", func() bool { data, _ := os.ReadFile(pkexecCalls); return strings.Count(string(data), "\n") == 2 })
	b.waitMenu(t, 5*time.Second, "stopped, without an error line", nil, func(items []menuItem) bool {
		_, errLine := find(items, "Error:")
		return statusIs("Builder: stopped")(items) && !errLine
	})
	waitFor(t, 5*time.Second, "the stopped icon back", func() bool { return b.icon(t) == stoppedIcon })
	time.Sleep(300 * time.Millisecond)
	if n := countNotified(b, "Setup failed"); n != failures {
		t.Errorf("a dismissed admin prompt was reported as a failure (%d notifications)", n-failures)
	}

	// Start at login writes an XDG autostart entry, and the menu shows the
	// entry's real state: one that starts nothing is unchecked.
	entry := filepath.Join(home, ".config/autostart/wrapix-builder.desktop")
	b.click(t, "Start at login")
	waitFor(t, 5*time.Second, "autostart entry", func() bool {
		_, err := os.Stat(entry)
		return err == nil
	})
	b.waitMenu(t, 5*time.Second, "start at login checked", nil, func(items []menuItem) bool { it, _ := find(items, "Start at login"); return it.checked })
	os.WriteFile(entry, []byte("[Desktop Entry]\nType=Application\nExec=\"/nonexistent/wrapix-builder-app\"\n"), 0o644)
	b.openMenu(t)
	b.waitMenu(t, 5*time.Second, "start at login unchecked for a broken entry", nil, func(items []menuItem) bool { it, ok := find(items, "Start at login"); return ok && !it.checked })

	b.click(t, "Quit")
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the app did not quit")
	}
}

func countNotified(b *bus, prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, s := range b.sent {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool, b ...*bus) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			if len(b) > 0 {
				b[0].mu.Lock()
				t.Logf("notifications so far: %q", b[0].sent)
				b[0].mu.Unlock()
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
