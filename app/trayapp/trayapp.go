// Package trayapp is the menu-bar app's controller. Data flows one way:
// event sources → the core's status model → menu.Render → the tray. Actions
// go through the same core code as the CLI and take the same lock.
//
// Cheap when idle: with the builder ready, a kept-alive SSH connection is the
// only probe (its loss is the "builder died" event, and it carries the
// running-builds count); fsnotify watches the data and config directories;
// the Nix/ssh setup files are compared by content hash; the full status
// (which runs the container CLI) is taken only on events, on menu opening,
// and by a timer that is fast during transitions and slow when steady.
package trayapp

import (
	"context"
	"crypto/sha256"
	"errors"

	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/platform"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/status"
)

// Tray is the UI the controller drives (app/tray renders it with systray).
type Tray interface {
	Render(menu.Model)
	Clicks() <-chan string   // item IDs
	Opened() <-chan struct{} // the menu was opened
	Quit()
}

// Poll intervals of the full status.
var (
	FastPoll   = 1 * time.Second  // while starting, stopping or unhealthy
	SlowPoll   = 60 * time.Second // stopped: nothing tells us when someone else starts it
	KeepAlive  = 5 * time.Second  // the ready builder's SSH connection
	BuildsPoll = 15 * time.Second // running builds, over that connection
	SetupPoll  = 30 * time.Second // the setup files' content hash
)

// App is the controller.
type App struct {
	Builder  *lifecycle.Builder
	Platform platform.Platform
	Tray     Tray
	CLI      string // the wrapix-builder CLI, for setup, shell and logs
	Root     string // "/" normally

	mu       sync.Mutex
	state    menu.State
	hostNix  string
	wake     chan string // reasons to observe now
	conn     *sshclient.Client
	stopping bool // we stop the builder: its death is not news
	wasReady bool // the builder was last seen ready (until seen stopped)
}

// Run drives the app until ctx ends or the user quits.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.Root == "" {
		a.Root = "/"
	}
	a.wake = make(chan string, 8)
	a.Builder.Progress = func(msg string) {
		if strings.Contains(msg, "store initialised") { // the entrypoint's first-start line
			a.notify("Wrapix Builder store initialised", strings.TrimPrefix(msg, "builder: "))
		}
	}
	if nv, err := lifecycle.HostNixVersion(ctx); err == nil {
		a.hostNix = nv.Raw
	}
	a.state.StartAtLogin = a.Platform.LoginItem != nil && a.Platform.LoginItem.Enabled()
	a.render()
	go a.watchFiles(ctx)
	go a.watchSetup(ctx)
	a.signal("startup")

	timer := time.NewTimer(FastPoll)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			a.dropConn()
			return nil
		case id := <-a.Tray.Clicks():
			if id == menu.Quit {
				a.dropConn()
				a.Tray.Quit()
				return nil
			}
			a.click(ctx, id)
		case <-a.Tray.Opened():
			a.signal("menu opened")
		case reason := <-a.wake:
			a.observe(ctx, reason)
			timer.Reset(a.nextPoll())
		case <-timer.C:
			if a.nextPoll() > 0 {
				a.observe(ctx, "poll")
			}
			timer.Reset(max(a.nextPoll(), time.Second))
		}
	}
}

// signal asks for an observation without blocking.
func (a *App) signal(reason string) {
	select {
	case a.wake <- reason:
	default:
	}
}

// nextPoll is the adaptive interval: 0 means no timer (the SSH connection watches).
func (a *App) nextPoll() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.state.Busy != "":
		return FastPoll
	case a.state.Report == nil:
		return FastPoll
	case a.state.Report.State == status.Ready && a.conn != nil:
		return 24 * time.Hour // the kept-alive connection reports changes
	case a.state.Report.State == status.Stopped, a.state.Report.State == status.Unavailable:
		return SlowPoll
	}
	return FastPoll
}

// observe takes the full status, notices transitions worth a notification,
// and keeps the SSH connection while the builder is ready.
func (a *App) observe(ctx context.Context, reason string) {
	r := a.Builder.Status(ctx, lifecycle.StatusOptions{Root: a.Root, HostNix: a.hostNix})
	a.mu.Lock()
	a.state.Report = r
	busy, stopping, wasReady := a.state.Busy != "", a.stopping, a.wasReady
	if !busy {
		a.stopping = false // our own stop has been seen through
	}
	switch r.State {
	case status.Ready:
		a.wasReady = true
	case status.Stopped, status.Unavailable:
		a.wasReady = false
	}
	a.mu.Unlock()
	// wasReady survives the in-between states an observation can catch (a
	// kill seen by the SSH probe before the runtime reports it), so every
	// death of a ready builder is reported once.
	switch {
	case busy:
	case wasReady && (r.State == status.Stopped || r.State == status.Unavailable) && !stopping:
		a.notify("Wrapix Builder stopped unexpectedly", "The builder is no longer running. Start it again from the menu.")
	case wasReady && r.State == status.Unhealthy:
		a.notify("Wrapix Builder is unhealthy", r.Summary)
	case !wasReady && r.State == status.Ready && reason != "startup":
		a.notify("Wrapix Builder is ready", "Builds for "+strings.Join(a.Builder.Config.Systems, ", ")+" can use it at "+r.SSH.Address+".")
	}
	if r.State == status.Ready {
		a.keepConn(ctx)
	} else {
		a.dropConn()
	}
	a.render()
}

// keepConn holds one SSH connection to the ready builder. Its end (EOF when
// the builder dies, or a failed keepalive) wakes the controller at once.
func (a *App) keepConn(ctx context.Context) {
	a.mu.Lock()
	if a.conn != nil {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	c, err := a.Builder.Dial(dctx)
	cancel()
	if err != nil {
		return
	}
	a.mu.Lock()
	a.conn = c
	a.mu.Unlock()
	lost := make(chan struct{})
	go func() { _ = c.Wait(); close(lost) }()
	go func() {
		keep := time.NewTicker(KeepAlive)
		builds := time.NewTicker(BuildsPoll)
		defer keep.Stop()
		defer builds.Stop()
		a.countBuilds(ctx, c)
		for {
			select {
			case <-ctx.Done():
				return
			case <-lost:
				a.connLost(c)
				return
			case <-keep.C:
				kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := c.KeepAlive(kctx)
				cancel()
				if err != nil {
					a.connLost(c)
					return
				}
			case <-builds.C:
				a.countBuilds(ctx, c)
			}
		}
	}()
}

func (a *App) connLost(c *sshclient.Client) {
	a.mu.Lock()
	if a.conn == c {
		a.conn = nil
	}
	a.mu.Unlock()
	c.Close()
	a.signal("connection lost")
}

func (a *App) dropConn() {
	a.mu.Lock()
	c := a.conn
	a.conn = nil
	a.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// countBuilds counts the builder's processes running as Nix build users.
func (a *App) countBuilds(ctx context.Context, c *sshclient.Client) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := c.Output(cctx, `grep -l '^Uid:[[:space:]]*300[0-9][0-9]' /proc/[0-9]*/status 2>/dev/null | wc -l`)
	if err != nil {
		return
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return
	}
	a.mu.Lock()
	changed := a.state.RunningBuilds != n
	a.state.RunningBuilds = n
	a.mu.Unlock()
	if changed {
		a.render()
	}
}

// watchFiles: a CLI start or stop touches the data directory (the lock,
// the guest keys); a config edit touches the config directory.
func (a *App) watchFiles(ctx context.Context) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return
	}
	defer w.Close()
	for _, d := range []string{a.Builder.Layout.DataDir, a.Builder.Layout.ConfigDir} {
		_ = os.MkdirAll(d, 0o700)
		_ = w.Add(d)
	}
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue // Spotlight and backup tools flood these
			}
			debounce = time.After(150 * time.Millisecond)
		case <-w.Errors:
		case <-debounce:
			a.signal("files changed")
		}
	}
}

// watchSetup re-hashes the Nix/ssh setup files: nix-darwin re-points
// /etc/static, so watches on them would see nothing.
func (a *App) watchSetup(ctx context.Context) {
	files := []string{"/etc/nix/nix.conf", nixconf.MachinesPath, nixconf.SSHConfigPath, nixconf.KnownHostsPath, "/etc/nix/nix.custom.conf"}
	hash := func() [32]byte {
		h := sha256.New()
		for _, f := range files {
			data, _ := os.ReadFile(filepath.Join(a.Root, f)) // follows the links
			h.Write([]byte(f))
			h.Write(data)
		}
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		return sum
	}
	last := hash()
	t := time.NewTicker(SetupPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if now := hash(); now != last {
				last = now
				a.signal("setup files changed")
			}
		}
	}
}

func (a *App) render() {
	a.mu.Lock()
	m := menu.Render(a.state)
	a.mu.Unlock()
	a.Tray.Render(m)
}

func (a *App) notify(title, body string) {
	if a.Platform.Notifier != nil {
		_ = a.Platform.Notifier.Notify(title, body)
	}
}

// readyNow reports a start we made; the next observation then has nothing new to say.
func (a *App) readyNow() {
	a.mu.Lock()
	a.wasReady = true
	a.mu.Unlock()
	a.notify("Wrapix Builder is ready", "Builds for "+strings.Join(a.Builder.Config.Systems, ", ")+" can use it at "+a.Builder.SSHAddress()+".")
}

// click runs an action. Long ones run in the background with Busy set.
func (a *App) click(ctx context.Context, id string) {
	switch id {
	case menu.Start:
		a.background(ctx, "Starting", func() error {
			_, err := a.Builder.Start(ctx)
			return err
		}, a.readyNow, "Start failed")
	case menu.Stop:
		a.background(ctx, "Stopping", func() error {
			_, err := a.Builder.Stop(ctx)
			return err
		}, nil, "Stop failed")
	case menu.Restart:
		a.background(ctx, "Restarting", func() error {
			if _, err := a.Builder.Stop(ctx); err != nil {
				return err
			}
			_, err := a.Builder.Start(ctx)
			return err
		}, a.readyNow, "Restart failed")
	case menu.CopyConfig:
		if err := a.copyConfig(); err != nil {
			a.fail("Copy failed", err)
		}
	case menu.RunSetup:
		argv := a.cliArgs("setup")
		a.background(ctx, "Running setup", func() error { return a.Platform.Admin.Run(argv) },
			func() { a.notify("Wrapix Builder setup done", "Your Mac's Nix now uses the builder.") }, "Setup failed")
	case menu.OpenShell:
		if err := a.Platform.Terminal.Open(a.cliArgs("ssh")); err != nil {
			a.fail("Cannot open a terminal", err)
		}
	case menu.ShowLogs:
		if err := a.Platform.Terminal.Open(a.cliArgs("logs", "--follow")); err != nil {
			a.fail("Cannot open a terminal", err)
		}
	case menu.StartAtLogin:
		a.mu.Lock()
		on := !a.state.StartAtLogin
		a.mu.Unlock()
		if err := a.Platform.LoginItem.Set(on); err != nil {
			a.fail("Start at login", err)
			return
		}
		a.mu.Lock()
		a.state.StartAtLogin = on
		a.mu.Unlock()
		a.render()
	}
}

// cliArgs is the CLI command line for an action, with this user's
// directories spelled out (setup runs as root, where $HOME differs).
func (a *App) cliArgs(args ...string) []string {
	l := a.Builder.Layout
	return append([]string{a.CLI, "--data-dir", l.DataDir, "--config-dir", l.ConfigDir}, args...)
}

// copyConfig puts exactly `wrapix-builder config` on the clipboard.
func (a *App) copyConfig() error {
	ks, err := keys.Load(a.Builder.Layout)
	if err != nil {
		return err
	}
	return a.Platform.Clipboard.Copy(nixconf.NixDarwin(a.Builder.Params(ks, nixconf.FormAlias)))
}

func (a *App) fail(what string, err error) {
	a.mu.Lock()
	a.state.LastError = what + ": " + err.Error()
	a.mu.Unlock()
	a.notify(what, err.Error())
	a.render()
}

func (a *App) background(ctx context.Context, busy string, run func() error, ok func(), failTitle string) {
	a.mu.Lock()
	if a.state.Busy != "" {
		a.mu.Unlock()
		return
	}
	a.state.Busy, a.state.LastError = busy, ""
	if busy == "Stopping" || busy == "Restarting" {
		a.stopping = true
	}
	a.mu.Unlock()
	a.render()
	go func() {
		err := run()
		a.mu.Lock()
		a.state.Busy = ""
		a.mu.Unlock()
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			a.fail(failTitle, err)
		} else if ok != nil {
			ok()
		}
		a.signal("action done")
	}()
}
