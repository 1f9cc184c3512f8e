// Package menu is the pure part of the menu-bar app: a function from the
// builder's state to the menu the user sees. No UI here; app/tray renders it.
package menu

import (
	"fmt"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/status"
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
	BuildsLine   = "builds"
	Start        = "start"
	Stop         = "stop"
	Restart      = "restart"
	CopyConfig   = "copy-config"
	RunSetup     = "run-setup"
	OpenShell    = "open-shell"
	ShowLogs     = "show-logs"
	StartAtLogin = "start-at-login"
	Quit         = "quit"
)

// Order is the menu's layout; "" is a separator.
var Order = []string{StatusLine, DetailLine, BuildsLine, "", Start, Stop, Restart, "", CopyConfig, RunSetup, OpenShell, ShowLogs, "", StartAtLogin, "", Quit}

// Item is one entry.
type Item struct {
	Title    string
	Enabled  bool
	Visible  bool
	Checkbox bool
	Checked  bool
}

// Model is the whole menu.
type Model struct {
	Icon    string
	Tooltip string
	Items   map[string]Item
}

// State is everything the menu depends on.
type State struct {
	Report        *status.Report // nil before the first observation
	Busy          string         // an action in progress: "Starting", "Stopping", "Restarting", "Running setup"; "" when idle
	RunningBuilds int
	StartAtLogin  bool
	LastError     string // the last action's failure, shown until the next action
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
	case !idle:
		set(StatusLine, "Builder: "+lower(s.Busy)+"…", false)
		m.Icon = IconBusy
	case r == nil:
		set(StatusLine, "Builder: checking…", false)
		m.Icon = IconBusy
	case state == status.Ready:
		set(StatusLine, "Builder: ready at "+r.SSH.Address, false)
		m.Icon = IconReady
	case state == status.Starting:
		set(StatusLine, "Builder: starting…", false)
		m.Icon = IconStarting
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
	detail := ""
	switch {
	case s.LastError != "":
		detail = "Error: " + s.LastError
		if m.Icon != IconBusy {
			m.Icon = IconProblem
		}
	case r != nil && r.Problem != nil && state != status.Stopped:
		detail = r.Problem.What
	case r != nil && r.Store.SizeBytes != nil:
		detail = "Store: " + config.HumanSize(*r.Store.SizeBytes) + " of " + config.HumanSize(r.Store.CapBytes)
	case r != nil && state == status.Ready && r.NixDaemon.Version != "":
		detail = "Nix " + r.NixDaemon.Version + " on " + r.Container.IP
	}
	m.Items[DetailLine] = Item{Title: truncate(detail, 60), Visible: detail != ""}
	builds := ""
	if state == status.Ready {
		switch s.RunningBuilds {
		case 0:
			builds = "No builds running"
		case 1:
			builds = "1 build running"
		default:
			builds = fmt.Sprintf("%d builds running", s.RunningBuilds)
		}
	}
	m.Items[BuildsLine] = Item{Title: builds, Visible: builds != ""}

	// Actions.
	set(Start, "Start", idle && r != nil && (state == status.Stopped || state == status.Unavailable))
	set(Stop, "Stop", idle && running)
	set(Restart, "Restart", idle && running)
	set(CopyConfig, "Copy nix-darwin config", haveKeys)
	setupTitle := "Run setup…"
	if r != nil && r.Setup.Trust == "ok" && r.Setup.NixConfig == "ok" {
		setupTitle = "Run setup again…"
	}
	set(RunSetup, setupTitle, idle && haveKeys)
	set(OpenShell, "Open shell", state == status.Ready)
	set(ShowLogs, "Show logs", r != nil && r.Container.Exists)
	m.Items[StartAtLogin] = Item{Title: "Start at login", Enabled: true, Visible: true, Checkbox: true, Checked: s.StartAtLogin}
	set(Quit, "Quit Wrapix Builder", true)

	m.Tooltip = "Wrapix Builder — " + m.Items[StatusLine].Title[len("Builder: "):]
	return m
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
