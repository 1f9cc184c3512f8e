// Package assets holds the app's images: the menu-bar template icons per
// state (drawn by assets/gen, black + alpha, 32×32 px: fyne.io/systray
// shows them at 16×16 pt, so this is the Retina size).
package assets

import "embed"

//go:embed icons/*.png
var icons embed.FS

// Icon returns the PNG for a state ("ready", "starting", "stopped",
// "problem", "busy").
func Icon(state string) []byte {
	data, err := icons.ReadFile("icons/" + state + ".png")
	if err != nil {
		return nil
	}
	return data
}
