//go:build !darwin || cgo

package tray

import (
	"fyne.io/systray"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/assets"
)

// Run starts the status-bar item and calls ready with the tray once the menu
// exists; it blocks until Quit (on darwin it must run on the main goroutine).
func Run(ready func(*Tray)) {
	systray.SetTitle("Wrapix Builder") // before Run: the SNI Id is taken from it on Linux
	systray.Run(func() {
		t := &Tray{clicks: make(chan string), opened: make(chan struct{}, 1), quit: systray.Quit, items: map[string]item{}}
		systray.SetTitle("")
		systray.SetTemplateIcon(assets.Icon(menu.IconBusy, true), assets.Icon(menu.IconBusy, false))
		systray.SetTooltip("Wrapix Builder")
		for _, id := range menu.Order {
			if id == "" {
				systray.AddSeparator()
				continue
			}
			var mi *systray.MenuItem
			if id == menu.StartAtLogin {
				mi = systray.AddMenuItemCheckbox("Start at login", "", false)
			} else {
				mi = systray.AddMenuItem(id, "")
			}
			t.items[id] = mi
			go func(id string, mi *systray.MenuItem) {
				for range mi.ClickedCh {
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

// Render shows the model.
func (t *Tray) Render(m menu.Model) {
	t.apply(m, func(state string) {
		systray.SetTemplateIcon(assets.Icon(state, true), assets.Icon(state, false))
	}, systray.SetTooltip)
}
