// Package trayapp is the menu-bar app's controller. Data flows one way:
// event sources → the core's status model → menu.Render → the tray. Actions
// go through the same core code as the CLI and take the same lock.
//
// One goroutine, the loop in Run, owns the state and renders; nothing it
// does waits on the container CLI, SSH or the admin prompt. Observations
// (the full status, which runs the CLI and may hang up to its 30 s timeout)
// and actions run in their own goroutines and post their results back, so
// a click is taken the moment it arrives and renders keep their order.
//
// Cheap when idle: with the builder ready, a kept-alive SSH connection is the
// only probe (its loss is the "builder died" event, and it carries the
// running-builds count); fsnotify watches the data and config directories;
// the Nix/ssh setup files are compared by content hash; the full status is
// taken only on events, on menu opening, and by a timer that is slow when
// the builder is stopped and backs off (1 s, 2 s, … 60 s) while it is in
// any other unsettled state — starting, unhealthy, or ready while our own
// SSH dial fails — until the next event resets it.
package trayapp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/platform"
	"github.com/wrapix/wrapix-builder/builder/agent"
	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/nixconf"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// Tray is the UI the controller drives (app/tray renders it with systray).
// Quit is the tray's own business: it must act even while we are busy.
type Tray interface {
	Render(menu.Model)
	Clicks() <-chan string   // item IDs
	Opened() <-chan struct{} // the menu was opened
}

// Poll intervals of the full status.
var (
	FastPoll   = 1 * time.Second  // the first poll after an event in an unsettled state
	MaxBackoff = 60 * time.Second // the backoff's ceiling
	SlowPoll   = 60 * time.Second // stopped: nothing tells us when someone else starts it
	KeepAlive  = 5 * time.Second  // the ready builder's SSH connection
	SetupPoll  = 30 * time.Second // the setup files' content hash
)

// NextBackoff is the poll interval after an unsettled poll that saw nothing new.
func NextBackoff(d time.Duration) time.Duration {
	return min(2*d, MaxBackoff)
}

// App is the controller.
type App struct {
	Layout   paths.Layout
	Builder  *lifecycle.Builder // nil while StartupError holds
	Platform platform.Platform
	Tray     Tray
	CLI      string // the wrapix-builder CLI, for setup, shell and logs
	Root     string // "/" normally

	// StartupError is why the app cannot drive the builder (a bad
	// config.toml): shown in the menu and a notification, and Reload is
	// tried whenever the config directory changes.
	StartupError error
	Reload       func() (*lifecycle.Builder, error)

	// Owned by the loop in Run.
	state           menu.State
	lastWakeFailure time.Time // the wake failure already notified
	seq             uint64
	hostNix         string
	conn            *sshclient.Client
	stopping        bool          // we stop the builder: its death is not news
	wasReady        bool          // the builder was last seen ready (until seen stopped)
	backoff         time.Duration // the unsettled poll interval
	observing       bool          // an observation is in flight
	pending         string        // the reason for another one once it lands
	gen             uint64        // bumped when an action starts or ends: older observations are stale
	due             time.Time     // the next poll
	builds          buildsState

	wake  chan string // reasons to observe, from the watchers
	posts chan func() // results from goroutines, run by the loop
	work  sync.WaitGroup

	notifyErrs sync.Map        // reasons already logged by notifyFailed
	done       <-chan struct{} // Run's end
}

// Run drives the app until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		a.dropConn()
		a.work.Wait() // cancelled CLI calls are killed by their contexts
	}()
	if a.Root == "" {
		a.Root = "/"
	}
	a.wake = make(chan string, 8)
	a.posts = make(chan func(), 16)
	a.done = ctx.Done()
	a.backoff = FastPoll
	a.state.StartupError = a.StartupError
	if a.Builder != nil {
		a.useBuilder()
	}
	a.render()
	if a.StartupError != nil {
		a.notify("Wrapix Builder cannot start", a.StartupError.Error())
	}
	a.goWork(func() { a.watchFiles(ctx) })
	a.goWork(func() { a.watchSetup(ctx) })
	a.observe(ctx, "startup")

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-a.Tray.Clicks():
			a.resetBackoff()
			a.click(ctx, id)
		case <-a.Tray.Opened():
			a.backoff = FastPoll
			a.observe(ctx, "menu opened")
			a.menuOpened(ctx)
		case reason := <-a.wake:
			a.backoff = FastPoll
			a.observe(ctx, reason)
		case f := <-a.posts:
			f()
		case <-timer.C:
			a.due = time.Time{}
			a.observe(ctx, "poll")
		}
		// Re-arm the timer for the current due time.
		timer.Stop()
		if !a.due.IsZero() {
			timer.Reset(max(time.Until(a.due), 0))
		}
	}
}

func (a *App) useBuilder() {
	a.Builder.Progress = func(msg string) {
		if strings.Contains(msg, "store initialised") { // the entrypoint's first-start line
			a.notify("Wrapix Builder store initialised", strings.TrimPrefix(msg, "builder: "))
		}
		if strings.Contains(msg, lifecycle.LocalNetworkFix) { // the start waits on the user's click: say it outside the menu too
			a.notify("Wrapix Builder needs Local Network access", lifecycle.LocalNetworkFix)
		}
		// The menu's progress line (a first start building its image with Nix):
		// best effort, dropped rather than blocking the start when the loop is busy.
		select {
		case a.posts <- func() {
			if a.state.Busy != "" {
				a.state.Progress = msg
				a.render()
			}
		}:
		default:
		}
	}
}

// goWork runs f in a goroutine that Run waits for when it ends.
func (a *App) goWork(f func()) {
	a.work.Add(1)
	go func() {
		defer a.work.Done()
		f()
	}()
}

// post hands f to the loop; false once the app is ending.
func (a *App) post(ctx context.Context, f func()) bool {
	select {
	case a.posts <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

// signal asks for an observation without blocking.
func (a *App) signal(reason string) {
	select {
	case a.wake <- reason:
	default:
	}
}

// resetBackoff: an event; the next poll comes soon again.
func (a *App) resetBackoff() {
	a.backoff = FastPoll
	if soon := time.Now().Add(FastPoll); !a.due.IsZero() && a.due.After(soon) && a.nextPoll() == FastPoll {
		a.due = soon
	}
}

// nextPoll is the interval until the next poll; 0 means none (the SSH
// connection or the file watches report changes).
func (a *App) nextPoll() time.Duration {
	r := a.state.Report
	switch {
	case a.StartupError != nil:
		return SlowPoll // the config directory's watch reports the fix
	case r == nil:
		return a.backoff
	case a.state.Busy == "" && r.State == status.Ready && a.conn != nil:
		return 0
	case a.state.Busy == "" && (r.State == status.Stopped || r.State == status.Unavailable):
		return SlowPoll
	}
	return a.backoff // starting, unhealthy, ready without our connection, or an action running
}

// observation is what one look at the builder found.
type observation struct {
	report  *status.Report
	conn    *sshclient.Client // a new connection to the ready builder, if we had none
	hostNix string
	login   platform.LoginState
}

// observe starts an observation in its own goroutine, or queues one when
// one is in flight.
func (a *App) observe(ctx context.Context, reason string) {
	if a.observing {
		if a.pending == "" || a.pending == "poll" {
			a.pending = reason
		}
		return
	}
	if a.Builder == nil {
		a.reload(ctx)
		if a.Builder == nil {
			a.due = time.Now().Add(SlowPoll)
			return
		}
	}
	a.observing = true
	gen, hostNix, needConn, b := a.gen, a.hostNix, a.conn == nil, a.Builder
	a.goWork(func() {
		o := a.look(ctx, b, hostNix, needConn)
		if !a.post(ctx, func() { a.observed(ctx, reason, gen, o) }) && o.conn != nil {
			o.conn.Close()
		}
	})
}

// look takes the full status (the host's Nix version the first time), and
// dials the ready builder when we have no connection to it.
func (a *App) look(ctx context.Context, b *lifecycle.Builder, hostNix string, needConn bool) observation {
	o := observation{hostNix: hostNix}
	if o.hostNix == "" {
		if nv, err := lifecycle.HostNixVersion(ctx); err == nil {
			o.hostNix = nv.Raw
		}
	}
	o.report = b.Status(ctx, lifecycle.StatusOptions{Root: a.Root, HostNix: o.hostNix})
	if o.report.State == status.Ready && needConn {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if c, err := b.Dial(dctx); err == nil {
			o.conn = c
		}
		cancel()
	}
	if a.Platform.LoginItem != nil {
		o.login = a.Platform.LoginItem.State()
	}
	return o
}

// observed applies an observation: it notices transitions worth a
// notification, keeps the SSH connection while the builder is ready, and
// sets the next poll.
func (a *App) observed(ctx context.Context, reason string, gen uint64, o observation) {
	a.observing = false
	a.hostNix = o.hostNix
	a.state.StartAtLogin = menu.LoginState(o.login)
	if gen != a.gen { // an action started or ended meanwhile: this report predates it
		if o.conn != nil {
			o.conn.Close()
		}
		a.render()
		a.observe(ctx, "action changed the builder")
		return
	}
	r := o.report
	prev := a.state.Report
	a.state.Report = r
	busy := a.state.Busy != ""
	stopping, wasReady := a.stopping, a.wasReady
	if !busy {
		a.stopping = false // our own stop has been seen through
	}
	switch r.State {
	case status.Ready:
		a.wasReady = true
	case status.Stopped, status.Unavailable:
		a.wasReady = false
	}
	if f := r.Waker.LastFailure; f != nil && !f.At.Equal(a.lastWakeFailure) && reason != "startup" {
		a.notify("Wrapix Builder could not start", "A build asked for the builder, but "+f.Reason)
	}
	if f := r.Waker.LastFailure; f != nil {
		a.lastWakeFailure = f.At
	}
	idleStopped := r.Waker.IdleStoppedAt != nil && time.Since(*r.Waker.IdleStoppedAt) < 10*time.Minute
	// wasReady survives the in-between states an observation can catch (a
	// kill seen by the SSH probe before the runtime reports it), so every
	// death of a ready builder is reported once.
	switch {
	case busy:
	case wasReady && r.State == status.Stopped && idleStopped: // serve stopped it after idle-stop: expected, no alarm
	case wasReady && (r.State == status.Stopped || r.State == status.Unavailable) && !stopping:
		a.notify("Wrapix Builder stopped unexpectedly", "The builder is no longer running. Start it again from the menu.")
	case wasReady && r.State == status.Unhealthy:
		a.notify("Wrapix Builder is unhealthy", r.Summary)
	case !wasReady && r.State == status.Ready && reason != "startup":
		a.notify("Wrapix Builder is ready", "Builds for "+strings.Join(a.Builder.Config.Systems, ", ")+" can use it at "+r.SSH.Address+".")
	}
	if r.State == status.Ready {
		if o.conn != nil {
			a.keepConn(ctx, o.conn)
		}
	} else {
		a.dropConn()
	}
	// Back off only while polls keep seeing the same unsettled state.
	switch {
	case prev == nil || prev.State != r.State:
		a.backoff = FastPoll
	case reason == "poll":
		a.backoff = NextBackoff(a.backoff)
	}
	a.render()
	if a.pending != "" {
		next := a.pending
		a.pending = ""
		a.observe(ctx, next)
		return
	}
	if d := a.nextPoll(); d > 0 {
		a.due = time.Now().Add(d)
	} else {
		a.due = time.Time{}
	}
}

// reload retries a configuration that failed to load.
func (a *App) reload(ctx context.Context) {
	if a.Reload == nil {
		return
	}
	b, err := a.Reload()
	if err != nil {
		if err.Error() != a.StartupError.Error() {
			a.notify("Wrapix Builder cannot start", err.Error())
		}
		a.StartupError, a.state.StartupError = err, err
		a.render()
		return
	}
	a.Builder, a.StartupError, a.state.StartupError = b, nil, nil
	a.useBuilder()
	a.render()
}

// keepConn holds the connection to the ready builder. Its end (EOF when
// the builder dies, or a failed keepalive) wakes the controller at once.
func (a *App) keepConn(ctx context.Context, c *sshclient.Client) {
	if a.conn != nil {
		c.Close()
		return
	}
	a.conn = c
	lost := make(chan struct{})
	go func() { _ = c.Wait(); close(lost) }()
	a.goWork(func() { a.followBuilds(ctx, c) })
	a.goWork(func() {
		keep := time.NewTicker(KeepAlive)
		defer keep.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-lost:
				a.post(ctx, func() { a.connLost(ctx, c) })
				return
			case <-keep.C:
				kctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				err := c.KeepAlive(kctx)
				cancel()
				if err != nil {
					a.post(ctx, func() { a.connLost(ctx, c) })
					return
				}
			}
		}
	})
}

// connLost: the builder's connection ended without us closing it.
func (a *App) connLost(ctx context.Context, c *sshclient.Client) {
	c.Close()
	if a.conn != c {
		return // we dropped it ourselves
	}
	a.conn = nil
	a.backoff = FastPoll
	a.observe(ctx, "connection lost")
}

func (a *App) dropConn() {
	if a.conn != nil {
		a.conn.Close()
		a.conn = nil
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
	for _, d := range []string{a.Layout.DataDir, a.Layout.ConfigDir} {
		if d == "" {
			continue
		}
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

// render decides the menu and shows it; models are numbered in the order
// they are decided, and the tray never lets an older one win.
func (a *App) render() {
	a.seq++
	a.state.Now = time.Now()
	m := menu.Render(a.state)
	m.Seq = a.seq
	a.Tray.Render(m)
}

// notify shows a notification without waiting for it (the osascript
// fallback takes a moment).
func (a *App) notify(title, body string) {
	// Both can carry text from the builder: one line, no control or bidi characters.
	title, body = textclean.Line(title, 0), textclean.Line(body, 0)
	if a.Platform.Notifier != nil {
		go func() { a.notifyFailed(a.Platform.Notifier.Notify(title, body)) }()
	}
}

// notifyFailed reports, once per reason, why a notification was not shown
// (issue 17 point 5: before, macOS dropped them silently): in the app's
// log, and when macOS refused without asking the user, in the menu. A
// user's "Don't Allow" is their choice: logged only.
func (a *App) notifyFailed(err error) {
	if err == nil {
		return
	}
	if _, seen := a.notifyErrs.LoadOrStore(err.Error(), true); seen {
		return
	}
	fmt.Fprintf(os.Stderr, "wrapix-builder-app: notification not shown: %v\n", err)
	if errors.Is(err, platform.ErrNotificationsFailed) {
		select {
		case a.posts <- func() { a.state.LastError = "Notifications: " + err.Error(); a.render() }:
		case <-a.done:
		}
	}
}

// readyNow reports a start we made; the next observation then has nothing new to say.
func (a *App) readyNow() {
	a.wasReady = true
	a.notify("Wrapix Builder is ready", "Builds for "+strings.Join(a.Builder.Config.Systems, ", ")+" can use it at "+a.Builder.SSHAddress()+".")
}

// click starts the clicked action; nothing here waits.
func (a *App) click(ctx context.Context, id string) {
	if a.Builder == nil && id != menu.StartAtLogin {
		return // every other action needs the configuration
	}
	switch id {
	case menu.Start:
		a.background(ctx, "Starting", func(ctx context.Context) error {
			_, err := a.Builder.Start(ctx)
			return err
		}, a.readyNow, "Start failed")
	case menu.Stop:
		a.background(ctx, "Stopping", func(ctx context.Context) error {
			_, err := a.Builder.Stop(ctx)
			return err
		}, nil, "Stop failed")
	case menu.Restart:
		a.background(ctx, "Restarting", func(ctx context.Context) error {
			if _, err := a.Builder.Stop(ctx); err != nil {
				return err
			}
			_, err := a.Builder.Start(ctx)
			return err
		}, a.readyNow, "Restart failed")
	case menu.Reclaim:
		var res lifecycle.ReclaimResult
		a.background(ctx, "Reclaiming disk space", func(ctx context.Context) error {
			var err error
			res, err = a.Builder.Reclaim(ctx, a.Builder.Config.StoreSizeCap)
			return err
		}, func() {
			a.notify("Wrapix Builder gave disk space back", "The store volume took "+humanOrUnknown(res.Before.DiskBytes)+
				" on disk; it now takes "+humanOrUnknown(res.After.DiskBytes)+".")
		}, "Reclaiming disk space failed")
	case menu.RunSetup:
		// As root, setup acts for the user --for-uid names: macOS's
		// administrator prompt sets no SUDO_UID.
		argv := a.cliArgs("setup", "--for-uid", strconv.Itoa(os.Getuid()))
		a.background(ctx, "Running setup", func(ctx context.Context) error {
			// Check first, ask second: what setup as root would refuse is
			// refused before the password is asked for (issue 17 point 8).
			if err := setupPreflight(a.CLI); err != nil {
				return err
			}
			// The keys root setup copies and the image a build's wake needs
			// (never built inside a wake), made here with progress.
			if err := a.Builder.Prepare(ctx); err != nil {
				return err
			}
			return a.Platform.Admin.Run(ctx, argv)
		},
			func() { a.notify("Wrapix Builder setup done", "Your Mac's Nix now uses the builder.") }, "Setup failed")
	case menu.CopyConfig:
		a.quick(ctx, "Copy failed", a.copyConfig)
	case menu.OpenShell:
		argv := a.cliArgs("ssh")
		a.quick(ctx, "Cannot open a terminal", func() error { return a.Platform.Terminal.Open("ssh", argv) })
	case menu.ShowLogs:
		argv := a.cliArgs("logs", "--follow")
		a.quick(ctx, "Cannot open a terminal", func() error { return a.Platform.Terminal.Open("logs", argv) })
	case menu.StartAtLogin:
		if a.Platform.LoginItem == nil {
			return
		}
		on := !a.state.StartAtLogin.On
		// With the app at login comes serve, which starts the builder when a
		// build asks (docs/on-demand.md); unticking leaves it: builds still work.
		var waker *agent.Spec
		if on && goruntime.GOOS == "darwin" && a.Builder != nil {
			l := a.Builder.Layout
			waker = &agent.Spec{Program: a.CLI, DataDir: l.DataDir, ConfigDir: l.ConfigDir}
		}
		a.goWork(func() {
			err := a.Platform.LoginItem.Set(on)
			if err == nil && waker != nil {
				err = agent.InstallForCurrentUser(*waker)
				if errors.Is(err, agent.ErrNixDarwinAgent) {
					err = nil // nix-darwin's module already runs serve at login
				}
			}
			st := a.Platform.LoginItem.State()
			a.post(ctx, func() {
				a.state.StartAtLogin = menu.LoginState(st)
				if err != nil {
					a.fail("Start at login", err)
					return
				}
				a.render()
			})
		})
	default:
		if i, ok := menu.FinishedIndex(id); ok {
			a.clickFinished(ctx, i)
		}
	}
}

// setupPreflight is what setup refuses about the program its login agent
// runs (a path macOS removes later; on macOS a Nix store path no profile
// links to), checked before the administrator prompt.
func setupPreflight(cli string) error {
	if err := agent.CheckProgram(cli); err != nil {
		return fmt.Errorf("%w: %s", err, agent.ProgramFix)
	}
	if goruntime.GOOS != "darwin" {
		return nil // only macOS installs the login agent
	}
	u := agent.User{UID: os.Getuid(), GID: os.Getgid()}
	u.Home, _ = os.UserHomeDir()
	if cur, err := user.Current(); err == nil {
		u.Name = cur.Username
	}
	if _, err := agent.StableProgram(cli, u); err != nil {
		return fmt.Errorf("%w: %s", err, agent.StableProgramFix)
	}
	return nil
}

// quick runs a short action in a goroutine and reports its failure.
func (a *App) quick(ctx context.Context, failTitle string, run func() error) {
	a.goWork(func() {
		if err := run(); err != nil {
			a.post(ctx, func() { a.fail(failTitle, err) })
		}
	})
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
	a.state.LastError = what + ": " + err.Error()
	a.notify(what, err.Error())
	a.render()
}

// background runs a long action with Busy set. A dismissed admin prompt is
// no failure: nothing is reported, and the previous error line is gone.
func (a *App) background(ctx context.Context, busy string, run func(context.Context) error, ok func(), failTitle string) {
	if a.state.Busy != "" {
		return
	}
	a.state.Busy, a.state.LastError = busy, ""
	if busy == "Stopping" || busy == "Restarting" || busy == "Reclaiming disk space" {
		a.stopping = true
	}
	a.gen++
	a.render()
	a.goWork(func() {
		err := run(ctx)
		a.post(ctx, func() {
			a.state.Busy, a.state.Progress = "", ""
			a.gen++
			switch {
			case err == nil:
				if ok != nil {
					ok()
				}
			case errors.Is(err, platform.ErrCancelled), errors.Is(err, context.Canceled):
			default:
				a.fail(failTitle, err)
			}
			a.backoff = FastPoll
			a.render()
			a.observe(ctx, "action done")
		})
	})
}

func humanOrUnknown(n int64) string {
	if n < 0 {
		return "an unknown amount"
	}
	return config.HumanSize(n)
}
