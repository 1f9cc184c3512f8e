// Package tray renders menu.Model with fyne.io/systray: one native item per
// menu ID, updated in place, and a goroutine per item that always receives
// its clicks (systray drops clicks nobody receives).
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

	mu    sync.Mutex
	items map[string]item
	icon  string
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

func (t *Tray) Clicks() <-chan string   { return t.clicks }
func (t *Tray) Opened() <-chan struct{} { return t.opened }
func (t *Tray) Quit()                   { t.quit() }

// apply updates the native items to the model.
func (t *Tray) apply(m menu.Model, setIcon func(state string), setTooltip func(string)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, it := range m.Items {
		n, ok := t.items[id]
		if !ok {
			continue
		}
		n.SetTitle(it.Title)
		if it.Enabled {
			n.Enable()
		} else {
			n.Disable()
		}
		if it.Visible {
			n.Show()
		} else {
			n.Hide()
		}
		if it.Checkbox {
			if it.Checked {
				n.Check()
			} else {
				n.Uncheck()
			}
		}
	}
	if m.Icon != t.icon {
		t.icon = m.Icon
		setIcon(m.Icon)
	}
	setTooltip(m.Tooltip)
}
