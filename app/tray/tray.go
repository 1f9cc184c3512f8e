// Package tray renders menu.Model with fyne.io/systray: one native item per
// menu ID, created with the first model's titles and updated in place, and a
// goroutine per item that always receives its clicks (systray drops clicks
// nobody receives: fyne.io/systray@v1.12.2 systray.go systrayMenuItemSelected).
package tray

import (
	"sync"

	"github.com/wrapix/wrapix-builder/app/menu"
)

// Tray implements trayapp.Tray.
type Tray struct {
	clicks chan string
	opened chan struct{}
	quit   func()

	mu      sync.Mutex
	items   map[string]item
	applied map[string]menu.Item // what each native item shows now
	seq     uint64               // the newest model applied
	icon    string
	tooltip string
}

// item is the subset of *systray.MenuItem the renderer uses.
type item interface {
	SetTitle(string)
	Enable()
	Disable()
	Show()
	Hide()
	Check()
	Uncheck()
}

func newTray(quit func()) *Tray {
	// Buffered: a click is taken off systray's channel at once even while
	// the controller is busy rendering.
	return &Tray{clicks: make(chan string, 16), opened: make(chan struct{}, 1), quit: quit, items: map[string]item{}, applied: map[string]menu.Item{}}
}

// Clicks delivers the IDs of clicked items, except Quit, which the tray
// handles itself so that it never waits for the controller.
func (t *Tray) Clicks() <-chan string   { return t.clicks }
func (t *Tray) Opened() <-chan struct{} { return t.opened }
func (t *Tray) Quit()                   { t.quit() }

// apply updates the native items to the model, touching only what changed.
// Models older than the last one applied are dropped: renders may come from
// several goroutines, and the newest decision must win.
func (t *Tray) apply(m menu.Model, setIcon func(state string), setTooltip func(string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m.Seq != 0 && m.Seq <= t.seq {
		return
	}
	t.seq = m.Seq
	for id, it := range m.Items {
		n, ok := t.items[id]
		if !ok {
			continue
		}
		old, shown := t.applied[id]
		if !shown || old.Title != it.Title {
			n.SetTitle(it.Title)
		}
		if !shown || old.Enabled != it.Enabled {
			if it.Enabled {
				n.Enable()
			} else {
				n.Disable()
			}
		}
		if !shown || old.Visible != it.Visible {
			if it.Visible {
				n.Show()
			} else {
				n.Hide()
			}
		}
		if it.Checkbox && (!shown || old.Checked != it.Checked) {
			if it.Checked {
				n.Check()
			} else {
				n.Uncheck()
			}
		}
		t.applied[id] = it
	}
	if m.Icon != t.icon {
		t.icon = m.Icon
		setIcon(m.Icon)
	}
	if m.Tooltip != t.tooltip {
		t.tooltip = m.Tooltip
		setTooltip(m.Tooltip)
	}
}
