package menu

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/builds"
)

// The "Building" section: fixed slots, hidden when unused (the tray keeps
// one native item per ID).
const (
	MaxRunningShown  = 5
	MaxFinishedShown = 5
)

var (
	RunningItems  = slotIDs("build-running-", MaxRunningShown)
	FinishedItems = slotIDs("build-finished-", MaxFinishedShown)
)

func slotIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
	}
	return ids
}

// FinishedIndex tells which finished build a clicked item shows.
func FinishedIndex(id string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "build-finished-"))
	if !strings.HasPrefix(id, "build-finished-") || err != nil || n < 0 || n >= MaxFinishedShown {
		return 0, false
	}
	return n, true
}

// renderBuilds fills the section: a header, each running build with its
// elapsed time, and the last finished ones (✓/✗, duration), which open
// their log when clicked.
func renderBuilds(s State, m *Model, ready bool) {
	header := ""
	switch {
	case ready && s.BuildsUnknown:
		header = "Builds: not shown until the builder restarts"
	case ready && len(s.Running) == 0:
		header = "No builds running"
	case len(s.Running) == 1:
		header = "Building 1 derivation:"
	case len(s.Running) > 1:
		header = fmt.Sprintf("Building %d derivations:", len(s.Running))
	}
	m.Items[BuildsLine] = Item{Title: header, Visible: header != ""}
	now := s.Now
	if now.IsZero() {
		now = time.Now()
	}
	for i, id := range RunningItems {
		it := Item{}
		switch {
		case i == MaxRunningShown-1 && len(s.Running) > MaxRunningShown:
			it = Item{Title: fmt.Sprintf("    … and %d more", len(s.Running)-i), Visible: true}
		case i < len(s.Running):
			b := s.Running[i]
			it = Item{Title: "    " + truncate(b.Name, 40) + " — " + builds.FormatDuration(b.Elapsed(now).Truncate(time.Second)), Visible: true}
		}
		m.Items[id] = it
	}
	for i, id := range FinishedItems {
		it := Item{}
		if i < len(s.Finished) {
			b := s.Finished[i]
			mark := map[string]string{builds.Succeeded: "✓", builds.Failed: "✗", builds.Interrupted: "!"}[b.Outcome]
			title := mark + " " + truncate(b.Name, 40) + " — " + builds.FormatDuration(b.Elapsed(now))
			if b.Outcome == builds.Failed {
				title += " (show log)"
			}
			it = Item{Title: title, Enabled: true, Visible: true}
		}
		m.Items[id] = it
	}
	if len(s.Running) > 0 && m.Icon == IconReady {
		m.Icon = IconBusy
	}
}
