//go:build !darwin || cgo

package tray

import (
	"sync"

	"fyne.io/systray"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/assets"
)

// Run starts the status-bar item, its items made with the initial model's
// titles and states (never their IDs), and calls ready with the tray once
// the menu exists. It blocks until Quit — the menu's Quit item calls it at
// once, whatever the controller is doing. On darwin it must run on the main
// goroutine.
func Run(initial menu.Model, ready func(*Tray)) {
	systray.SetTitle("Wrapix Builder") // before Run: the SNI Id is taken from it on Linux
	systray.Run(func() {
		var quitOnce sync.Once
		t := newTray(func() { quitOnce.Do(systray.Quit) })
		systray.SetTitle("")
		t.icon, t.tooltip = initial.Icon, initial.Tooltip
		setIcon(initial.Icon)
		systray.SetTooltip(initial.Tooltip)
		for _, id := range menu.Order {
			if id == "" {
				systray.AddSeparator()
				continue
			}
			it := initial.Items[id]
			var mi *systray.MenuItem
			if it.Checkbox {
				mi = systray.AddMenuItemCheckbox(it.Title, "", it.Checked)
			} else {
				mi = systray.AddMenuItem(it.Title, "")
			}
			if !it.Enabled {
				mi.Disable()
			}
			if !it.Visible {
				mi.Hide()
			}
			t.items[id], t.applied[id] = mi, it
			go func(id string, mi *systray.MenuItem) {
				for range mi.ClickedCh {
					if id == menu.Quit {
						t.Quit()
						continue
					}
					t.clicks <- id
				}
			}(id, mi)
		}
		go func() {
			for range systray.TrayOpenedCh {
				select {
				case t.opened <- struct{}{}:
				default:
				}
			}
		}()
		go ready(t) // onReady must return quickly: GetLayout waits for it
	}, func() {})
}

// setIcon shows a state's template icon. systray's darwin side draws it at
// 16×16 pt whatever its pixels (systray_darwin.m setIcon: setSize 16×16,
// template = YES), so the image is 32 px: sharp on Retina.
func setIcon(state string) {
	systray.SetTemplateIcon(assets.Icon(state), assets.Icon(state))
}

// Render shows the model.
func (t *Tray) Render(m menu.Model) {
	t.apply(m, setIcon, systray.SetTooltip)
}
