// Package menu is the pure part of the menu-bar app: a function from the
// builder's state to the menu the user sees. No UI here; app/tray renders it.
package menu

import (
	"errors"
	"time"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// Icon states, one template icon each (assets/).
const (
	IconReady    = "ready"
	IconStarting = "starting"
	IconStopped  = "stopped"
	IconProblem  = "problem"
	IconBusy     = "busy"
)

// Item IDs: stable, so the tray can keep one native item per ID.
const (
	StatusLine   = "status"
	DetailLine   = "detail"
	FixLine      = "fix"
	BuildsLine   = "builds"
	Start        = "start"
	Stop         = "stop"
	Restart      = "restart"
	Reclaim      = "reclaim"
	CopyConfig   = "copy-config"
	RunSetup     = "run-setup"
	OpenShell    = "open-shell"
	ShowLogs     = "show-logs"
	StartAtLogin = "start-at-login"
	Quit         = "quit"
)

// Order is the menu's layout; "" is a separator.
var Order = append(append(append([]string{StatusLine, DetailLine, FixLine, BuildsLine}, RunningItems...), FinishedItems...), "", Start, Stop, Restart, Reclaim, "", CopyConfig, RunSetup, OpenShell, ShowLogs, "", StartAtLogin, "", Quit)

// Item is one entry.
type Item struct {
	Title    string
	Enabled  bool
	Visible  bool
	Checkbox bool
	Checked  bool
}

// Model is the whole menu. Seq orders models: the controller numbers them
// as it decides them, and the tray never applies an older one over a newer.
type Model struct {
	Seq     uint64
	Icon    string
	Tooltip string
	Items   map[string]Item
}

// State is everything the menu depends on.
type State struct {
	Report        *status.Report // nil before the first observation
	Busy          string         // an action in progress: "Starting", "Stopping", "Restarting", "Running setup"; "" when idle
	Progress      string         // the action's latest step (a first start's image build), while Busy
	Running       []builds.Build // running builds, oldest first (docs/builds.md)
	Finished      []builds.Build // the last few finished builds, newest first
	Now           time.Time      // for elapsed times (zero: time.Now())
	BuildsUnknown bool           // the builder's image records no build activity (restart it)
	StartAtLogin  LoginState
	LastError     string // the last action's failure, shown until the next action
	StartupError  error  // the app cannot drive the builder (a bad config.toml): shown with its fix until it is fixed
}

// LoginState is what the platform reports about start at login.
type LoginState struct {
	On      bool   // the app will start at login
	Pending bool   // registered, but the user must allow it in System Settings (macOS)
	Problem string // why start at login cannot be used here ("" when it can)
}

// Render decides the menu for a state.
func Render(s State) Model {
	m := Model{Items: map[string]Item{}}
	set := func(id, title string, enabled bool) {
		m.Items[id] = Item{Title: title, Enabled: enabled, Visible: true}
	}
	r := s.Report
	state := ""
	if r != nil {
		state = r.State
	}
	idle := s.Busy == ""
	running := state == status.Ready || state == status.Starting || state == status.Unhealthy
	haveKeys := r != nil && r.SSH.HostKeyFingerprint != ""

	// Status lines.
	switch {
	case s.StartupError != nil:
		set(StatusLine, "Builder: cannot start (configuration error)", false)
		m.Icon = IconProblem
	case !idle:
		set(StatusLine, "Builder: "+lower(s.Busy)+"…", false)
		m.Icon = IconBusy
	case r == nil:
		set(StatusLine, "Builder: checking…", false)
		m.Icon = IconBusy
	case state == status.Ready && r.Waker.Running && r.Waker.Connections == 0 && r.Waker.StopsAt != nil && len(s.Running) == 0:
		set(StatusLine, "Builder: idle — stops in "+status.Until(now(s), *r.Waker.StopsAt), false)
		m.Icon = IconReady
	case state == status.Ready:
		set(StatusLine, "Builder: ready at "+r.SSH.Address, false)
		m.Icon = IconReady
	case state == status.Starting:
		set(StatusLine, "Builder: starting…", false)
		m.Icon = IconStarting
	case state == status.Stopped && r.Waker.Running:
		set(StatusLine, "Builder: stopped — starts on demand", false)
		m.Icon = IconStopped
	case state == status.Stopped:
		set(StatusLine, "Builder: stopped", false)
		m.Icon = IconStopped
	case state == status.Unavailable:
		set(StatusLine, "Builder: container runtime unavailable", false)
		m.Icon = IconProblem
	default:
		set(StatusLine, "Builder: "+r.Summary, false)
		m.Icon = IconProblem
	}
	detail, fix := "", ""
	switch {
	case s.StartupError != nil:
		detail, fix = problemLines(s.StartupError)
	case s.LastError != "":
		detail = "Error: " + s.LastError
		if m.Icon != IconBusy {
			m.Icon = IconProblem
		}
	case !idle && s.Progress != "": // e.g. a first start building its image
		detail = s.Progress
	case r != nil && state == status.Stopped && r.Waker.LastFailure != nil:
		detail = "A build asked for the builder, but it could not start: " + r.Waker.LastFailure.Reason
		if b := r.Waker.LastFailure.Backoff(now(s)); b != "" {
			fix = "Not retrying yet: " + b
		}
		m.Icon = IconProblem
	case r != nil && r.Problem != nil && state != status.Stopped:
		detail = r.Problem.What
	case r != nil && len(r.Warnings) > 0:
		detail = "Warning: " + r.Warnings[0].What
	case r != nil && r.Store.SizeBytes != nil && r.Store.UsedBytes != nil:
		detail = "Store: " + config.HumanSize(*r.Store.UsedBytes) + " in use, " + config.HumanSize(*r.Store.SizeBytes) + " on disk"
	case r != nil && r.Store.SizeBytes != nil:
		detail = "Store: " + config.HumanSize(*r.Store.SizeBytes) + " on disk (cap " + config.HumanSize(r.Store.CapBytes) + ")"
	case r != nil && state == status.Ready && r.NixDaemon.Version != "":
		detail = "Nix " + r.NixDaemon.Version + " on " + r.Container.IP
	}
	width := 60
	if s.StartupError != nil {
		width = 150 // the file's path and the key: nothing else to act on
	}
	m.Items[DetailLine] = Item{Title: truncate(detail, width), Visible: detail != ""}
	m.Items[FixLine] = Item{Title: truncate(fix, 150), Visible: fix != ""}
	renderBuilds(s, &m, state == status.Ready)

	// Actions.
	set(Start, "Start", idle && r != nil && (state == status.Stopped || state == status.Unavailable))
	set(Stop, "Stop", idle && running)
	set(Restart, "Restart", idle && running)
	// Reclaim: collect garbage, then give the freed space back to macOS
	// (docs/reclaim.md); it stops the builder while it copies the store.
	reclaim := "Reclaim disk space…"
	if r != nil && r.Store.ReclaimableBytes != nil {
		reclaim += " (" + config.HumanSize(*r.Store.ReclaimableBytes) + ")"
	}
	set(Reclaim, reclaim, idle && r != nil && r.Store.Backend == config.StoreVolume && (state == status.Ready || state == status.Stopped))
	set(CopyConfig, "Copy nix-darwin config", haveKeys)
	setupTitle := "Run setup…"
	if r != nil && r.Setup.Trust == "ok" && r.Setup.NixConfig == "ok" {
		setupTitle = "Run setup again…"
	}
	set(RunSetup, setupTitle, idle && haveKeys)
	set(OpenShell, "Open shell", state == status.Ready)
	set(ShowLogs, "Show logs", r != nil && r.Container.Exists)
	login := Item{Title: "Start at login", Enabled: true, Visible: true, Checkbox: true, Checked: s.StartAtLogin.On}
	switch {
	case s.StartAtLogin.Problem != "":
		login.Title, login.Enabled = "Start at login ("+s.StartAtLogin.Problem+")", false
	case s.StartAtLogin.Pending:
		login.Title = "Start at login (allow it in System Settings…)"
	}
	m.Items[StartAtLogin] = login
	set(Quit, "Quit Wrapix Builder", true)

	// Titles carry text from the builder (build names, errors it sent): one
	// line each, without control or bidi characters.
	for id, it := range m.Items {
		it.Title = textclean.Line(it.Title, 0)
		m.Items[id] = it
	}
	m.Tooltip = "Wrapix Builder — " + m.Items[StatusLine].Title[len("Builder: "):]
	return m
}

// problemLines splits a failure into what happened and its fix (problem.Error's parts).
func problemLines(err error) (what, fix string) {
	var p *problem.Error
	if errors.As(err, &p) {
		what = p.What
		if p.Err != nil {
			what += ": " + p.Err.Error()
		}
		if p.Fix != "" {
			fix = "Fix: " + p.Fix
		}
		return what, fix
	}
	return err.Error(), ""
}

// now is the state's clock (zero: the real one).
func now(s State) time.Time {
	if s.Now.IsZero() {
		return time.Now()
	}
	return s.Now
}

func lower(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
