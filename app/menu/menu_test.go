package menu

import (
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/status"
)

func report(state string) *status.Report {
	size := int64(3 << 30)
	r := &status.Report{State: state, Summary: state,
		SSH:       status.SSH{Address: "127.0.0.1:2222", HostKeyFingerprint: "SHA256:x"},
		Container: status.Container{Exists: state != status.Stopped, IP: "192.168.64.5"},
		NixDaemon: status.NixDaemon{Version: "2.31.2"},
		Store:     status.Store{SizeBytes: &size, CapBytes: 100 << 30},
		Setup:     status.Setup{Trust: "ok", NixConfig: "ok"}}
	if state == status.Unhealthy {
		r.Problem = &status.Problem{What: "nix-daemon on the builder: connection refused"}
	}
	return r
}

func TestRenderEveryState(t *testing.T) {
	type want struct {
		icon, status                                 string
		start, stop, restart, shell, setup, copyConf bool
	}
	cases := []struct {
		name string
		s    State
		w    want
	}{
		{"checking", State{}, want{IconBusy, "Builder: checking…", false, false, false, false, false, false}},
		{"stopped", State{Report: report(status.Stopped)}, want{IconStopped, "Builder: stopped", true, false, false, false, true, true}},
		{"starting", State{Report: report(status.Starting)}, want{IconStarting, "Builder: starting…", false, true, true, false, true, true}},
		{"ready", State{Report: report(status.Ready)}, want{IconReady, "Builder: ready at 127.0.0.1:2222", false, true, true, true, true, true}},
		{"unhealthy", State{Report: report(status.Unhealthy)}, want{IconProblem, "Builder: unhealthy", false, true, true, false, true, true}},
		{"unavailable", State{Report: report(status.Unavailable)}, want{IconProblem, "Builder: container runtime unavailable", true, false, false, false, true, true}},
		{"busy starting", State{Report: report(status.Stopped), Busy: "Starting"}, want{IconBusy, "Builder: starting…", false, false, false, false, false, true}},
		{"busy stopping", State{Report: report(status.Ready), Busy: "Stopping"}, want{IconBusy, "Builder: stopping…", false, false, false, true, false, true}},
		{"failed action", State{Report: report(status.Stopped), LastError: "Start failed: port taken"}, want{IconProblem, "Builder: stopped", true, false, false, false, true, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := Render(tc.s)
			if m.Icon != tc.w.icon || m.Items[StatusLine].Title != tc.w.status {
				t.Fatalf("icon %q status %q", m.Icon, m.Items[StatusLine].Title)
			}
			for id, en := range map[string]bool{Start: tc.w.start, Stop: tc.w.stop, Restart: tc.w.restart, OpenShell: tc.w.shell, RunSetup: tc.w.setup, CopyConfig: tc.w.copyConf} {
				if m.Items[id].Enabled != en {
					t.Errorf("%s enabled = %v, want %v", id, m.Items[id].Enabled, en)
				}
			}
			if !m.Items[Quit].Enabled || !m.Items[StartAtLogin].Checkbox {
				t.Error("Quit and Start at login are always there")
			}
			for _, id := range Order {
				if _, ok := m.Items[id]; id != "" && !ok {
					t.Errorf("item %s missing", id)
				}
			}
			if m.Items[StatusLine].Enabled {
				t.Error("status lines are not clickable")
			}
		})
	}
	ready := Render(State{Report: report(status.Ready)})
	if ready.Items[BuildsLine].Title != "No builds running" || !strings.Contains(ready.Items[DetailLine].Title, "3.0 GiB") {
		t.Errorf("ready detail %+v / %+v", ready.Items[DetailLine], ready.Items[BuildsLine])
	}
	failed := Render(State{Report: report(status.Stopped), LastError: "Start failed: port taken"})
	if !strings.Contains(failed.Items[DetailLine].Title, "port taken") || !failed.Items[DetailLine].Visible {
		t.Error("a failed action must show")
	}
	if Render(State{Report: report(status.Ready), StartAtLogin: LoginState{On: true}}).Items[StartAtLogin].Checked != true {
		t.Error("start at login check")
	}
}

// A builder that runs without the Nix sandbox (container 1.2.0) says so in
// the menu, in place of the store line.
func TestRenderShowsWarning(t *testing.T) {
	r := report(status.Ready)
	r.Warnings = []status.Warning{{What: "builds run WITHOUT the Nix sandbox", Fix: "upgrade container"}}
	m := Render(State{Report: r})
	if d := m.Items[DetailLine]; !d.Visible || !strings.HasPrefix(d.Title, "Warning: builds run WITHOUT the Nix sandbox") {
		t.Fatalf("detail line %+v", d)
	}
}

// The on-demand states: stopped with serve running, idle with an idle stop
// due, and a failed wake.
func TestRenderOnDemand(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	stopsAt := now.Add(12 * time.Minute)
	stopped := report(status.Stopped)
	stopped.Waker = status.Waker{Running: true, IdleStopSeconds: 1800}
	idle := report(status.Ready)
	idle.Waker = status.Waker{Running: true, IdleStopSeconds: 1800, StopsAt: &stopsAt}
	busy := report(status.Ready)
	busy.Waker = status.Waker{Running: true, IdleStopSeconds: 1800, Connections: 2}
	failed := report(status.Stopped)
	failed.Waker = status.Waker{Running: true, LastFailure: &status.WakeFailure{At: now, Reason: "the builder image is not loaded"}}
	for _, tc := range []struct {
		name         string
		r            *status.Report
		status, icon string
		detail       string
	}{
		{"stopped, starts on demand", stopped, "Builder: stopped — starts on demand", IconStopped, ""},
		{"idle", idle, "Builder: idle — stops in 12 min", IconReady, ""},
		{"in use", busy, "Builder: ready at 127.0.0.1:2222", IconReady, ""},
		{"failed wake", failed, "Builder: stopped — starts on demand", IconProblem, "A build asked for the builder, but it could not start: the builder image is not loaded"},
	} {
		m := Render(State{Report: tc.r, Now: now})
		if got := m.Items[StatusLine].Title; got != tc.status || m.Icon != tc.icon {
			t.Errorf("%s: %q %s, want %q %s", tc.name, got, m.Icon, tc.status, tc.icon)
		}
		if tc.detail != "" && !strings.HasPrefix(tc.detail, strings.TrimSuffix(m.Items[DetailLine].Title, "…")) {
			t.Errorf("%s: detail %q", tc.name, m.Items[DetailLine].Title)
		}
	}
	// serve waits after failed starts (issue 16.11): the menu says for how long.
	retryAt := now.Add(40 * time.Second)
	failed.Waker.LastFailure.Attempts, failed.Waker.LastFailure.RetryAt = 3, &retryAt
	m := Render(State{Report: failed, Now: now})
	if got := m.Items[FixLine]; !got.Visible || got.Title != "Not retrying yet: after 3 failed start(s) in a row, serve closes build connections for 40 s more" {
		t.Errorf("backoff: fix line %+v", got)
	}
	if m := Render(State{Report: failed, Now: retryAt}); m.Items[FixLine].Visible {
		t.Errorf("backoff over: fix line still %q", m.Items[FixLine].Title)
	}
}

// While an action runs, its latest step (a first start building the image)
// is the detail line.
func TestRenderProgress(t *testing.T) {
	m := Render(State{Report: report(status.Stopped), Busy: "Starting", Progress: "nix: building '/nix/store/…-builder-image.tar.drv'…"})
	if d := m.Items[DetailLine]; !d.Visible || !strings.HasPrefix(d.Title, "nix: building") {
		t.Fatalf("detail line %+v", d)
	}
	if d := Render(State{Report: report(status.Stopped), Progress: "stale"}).Items[DetailLine]; strings.Contains(d.Title, "stale") {
		t.Fatalf("progress shown when idle: %+v", d)
	}
}

// The store line shows the store in use beside the disk taken on the Mac,
// and "Reclaim disk space…" is there for a volume store that is ready or
// stopped (it stops the builder itself), naming what it would give back.
func TestReclaimItemAndStoreNumbers(t *testing.T) {
	used, disk, back := int64(8<<30), int64(40<<30), int64(32<<30)
	r := report(status.Ready)
	r.Store = status.Store{Backend: "volume", Location: "wrapix-builder-nix", SizeBytes: &disk, UsedBytes: &used, ReclaimableBytes: &back, CapBytes: 100 << 30}
	m := Render(State{Report: r})
	if got := m.Items[DetailLine].Title; got != "Store: 8.0 GiB in use, 40.0 GiB on disk" {
		t.Errorf("detail %q", got)
	}
	if it := m.Items[Reclaim]; !it.Enabled || !it.Visible || it.Title != "Reclaim disk space… (32.0 GiB)" {
		t.Errorf("reclaim item %+v", it)
	}
	r.Store.UsedBytes, r.Store.ReclaimableBytes, r.State = nil, nil, status.Stopped
	m = Render(State{Report: r})
	if got := m.Items[DetailLine].Title; got != "Store: 40.0 GiB on disk (cap 100.0 GiB)" {
		t.Errorf("detail while stopped %q", got)
	}
	if it := m.Items[Reclaim]; !it.Enabled || it.Title != "Reclaim disk space…" {
		t.Errorf("reclaim item while stopped %+v", it)
	}
	for _, s := range []State{
		{Report: r, Busy: "Starting"},
		{Report: report(status.Unhealthy)},
		{Report: &status.Report{State: status.Stopped, Store: status.Store{Backend: "directory"}}},
	} {
		if Render(s).Items[Reclaim].Enabled {
			t.Errorf("reclaim enabled for %+v", s)
		}
	}
}
