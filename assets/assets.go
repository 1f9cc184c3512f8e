// Package assets holds the app's images: the menu-bar template icons per
// state (drawn by assets/gen, black + alpha, 1x and 2x).
package assets

import "embed"

//go:embed icons/*.png
var icons embed.FS

// Icon returns the PNG for a state ("ready", "starting", "stopped",
// "problem", "busy"); retina selects the @2x image.
func Icon(state string, retina bool) []byte {
	name := "icons/" + state + ".png"
	if retina {
		name = "icons/" + state + "@2x.png"
	}
	data, err := icons.ReadFile(name)
	if err != nil {
		return nil
	}
	return data
}
