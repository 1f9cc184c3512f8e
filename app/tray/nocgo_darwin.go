//go:build darwin && !cgo

package tray

import (
	"fmt"
	"os"

	"github.com/wrapix/wrapix-builder/app/menu"
)

// Run cannot show a menu-bar item without cgo (systray's darwin side is
// Objective-C). The app is built with cgo on a Mac; this keeps the cgo-free
// cross-build of the whole module working.
func Run(initial menu.Model, ready func(*Tray)) {
	fmt.Fprintln(os.Stderr, "wrapix-builder-app: built without cgo, so it has no menu-bar item; build it on a Mac with CGO_ENABLED=1")
	os.Exit(1)
}

// Render is unreachable without cgo.
func (t *Tray) Render(menu.Model) {}
