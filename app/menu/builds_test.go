package menu

import (
	"strconv"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

func TestBuildingSection(t *testing.T) {
	now := time.Unix(1000, 0)
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	end := at(990)
	s := State{Report: &status.Report{State: status.Ready}, Now: now,
		Running: []builds.Build{{Name: "hello", Outcome: builds.Running, Start: at(958)}, {Name: "world", Outcome: builds.Running, Start: at(999)}},
		Finished: []builds.Build{{Name: "broken", Outcome: builds.Failed, Start: at(988), End: &end},
			{Name: "fine", Outcome: builds.Succeeded, Start: at(800), End: &end}},
	}
	m := Render(s)
	for id, want := range map[string]string{
		BuildsLine: "Building 2 derivations:", RunningItems[0]: "    hello — 42s", RunningItems[1]: "    world — 1s",
		FinishedItems[0]: "✗ broken — 2s (show log)", FinishedItems[1]: "✓ fine — 3m10s",
	} {
		if got := m.Items[id]; got.Title != want || !got.Visible {
			t.Errorf("%s: %+v, want %q", id, got, want)
		}
	}
	if m.Items[RunningItems[2]].Visible || m.Items[FinishedItems[2]].Visible {
		t.Error("unused slots must be hidden")
	}
	if !m.Items[FinishedItems[0]].Enabled || m.Items[RunningItems[0]].Enabled {
		t.Error("finished builds open their log; running ones are not clickable")
	}
	if m.Icon != IconBusy {
		t.Errorf("icon while building: %s", m.Icon)
	}
	if i, ok := FinishedIndex(FinishedItems[1]); !ok || i != 1 {
		t.Error("FinishedIndex")
	}
	if _, ok := FinishedIndex(RunningItems[1]); ok {
		t.Error("FinishedIndex of a running slot")
	}
	// Many running: the last slot says how many more.
	s.Running = nil
	for i := 0; i < 8; i++ {
		s.Running = append(s.Running, builds.Build{Name: "b" + strconv.Itoa(i), Outcome: builds.Running, Start: at(990)})
	}
	m = Render(s)
	if got := m.Items[RunningItems[MaxRunningShown-1]].Title; got != "    … and 4 more" {
		t.Errorf("overflow: %q", got)
	}
	s.Running = nil
	if m = Render(s); m.Icon != IconReady || m.Items[BuildsLine].Title != "No builds running" {
		t.Errorf("idle: %s %q", m.Icon, m.Items[BuildsLine].Title)
	}
	s.BuildsUnknown = true
	if m = Render(s); m.Items[BuildsLine].Title != "Builds: not shown until the builder restarts" {
		t.Errorf("an image without build activity: %q", m.Items[BuildsLine].Title)
	}
}

// Text from the builder reaches menu titles (build names, errors it sent):
// each is shown on one line without control or bidi characters.
func TestTitlesWithoutControlCharacters(t *testing.T) {
	end := time.Unix(990, 0)
	m := Render(State{Report: &status.Report{State: status.Ready}, Now: time.Unix(1000, 0),
		Running:  []builds.Build{{Name: "x\x1b]0;title\x07y", Outcome: builds.Running, Start: time.Unix(999, 0)}},
		Finished: []builds.Build{{Name: "evil\u202egnp\nnext", Outcome: builds.Failed, Start: time.Unix(980, 0), End: &end}},
	})
	for id, it := range m.Items {
		for _, r := range it.Title {
			if textclean.Hidden(r) {
				t.Errorf("%s: %q keeps %U", id, it.Title, r)
			}
		}
	}
	if got := m.Items[FinishedItems[0]].Title; got != "✗ evil gnp next — 10s (show log)" {
		t.Errorf("finished title %q", got)
	}
}
