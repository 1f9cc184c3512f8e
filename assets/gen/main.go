// Command gen draws the menu-bar template icons (black + alpha, as macOS
// template images want) for every state: go run ./assets/gen assets/icons.
// fyne.io/systray shows a template icon at 16×16 pt whatever its pixels
// (systray_darwin.m setIcon), so each is 32×32 px, drawn on a 16-unit grid
// (2 px a unit: the edges fall on pixel boundaries). The output is
// committed; a test checks it is what this program draws.
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
)

// TemplatePixels is the template icons' size: 16 pt at 2x.
const TemplatePixels = 32

// The glyph: a rounded box (the builder) with a state mark at its centre,
// on the app icon's 18-unit grid.
func draw(state string, size int) *image.NRGBA { return drawOnGrid(state, size, 18) }

// drawOnGrid draws the glyph on a grid of the given units (the glyph is 14
// units wide, centred).
func drawOnGrid(state string, size int, grid float64) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	s := float64(size) / grid
	c := grid / 2 // the centre
	set := func(x, y int, a float64) {
		if a <= 0 {
			return
		}
		if a > 1 {
			a = 1
		}
		old := float64(img.NRGBAAt(x, y).A) / 255
		img.SetNRGBA(x, y, color.NRGBA{0, 0, 0, uint8(math.Round(255 * math.Max(old, a)))})
	}
	// coverage of a pixel by a shape, by 4×4 supersampling
	cover := func(inside func(x, y float64) bool) {
		for py := 0; py < size; py++ {
			for px := 0; px < size; px++ {
				n := 0
				for sy := 0; sy < 4; sy++ {
					for sx := 0; sx < 4; sx++ {
						if inside((float64(px)+(float64(sx)+0.5)/4)/s, (float64(py)+(float64(sy)+0.5)/4)/s) {
							n++
						}
					}
				}
				set(px, py, float64(n)/16)
			}
		}
	}
	box := func(x, y float64, stroke float64) bool { // rounded square outline, 14 units wide, radius 3
		d := roundedBoxDist(x-c, y-c, 7, 3)
		return d <= 0 && d > -stroke
	}
	cover(func(x, y float64) bool { return box(x, y, 1.5) })
	dist := func(x, y float64) float64 { return math.Hypot(x-c, y-c) }
	switch state {
	case "ready": // a filled dot
		cover(func(x, y float64) bool { return dist(x, y) <= 3.2 })
	case "starting": // the left half of the dot
		cover(func(x, y float64) bool { return dist(x, y) <= 3.2 && x <= c })
		cover(func(x, y float64) bool { d := dist(x, y); return d <= 3.2 && d >= 2.4 })
	case "stopped": // an empty ring
		cover(func(x, y float64) bool { d := dist(x, y); return d <= 3.2 && d >= 2.2 })
	case "problem": // an exclamation mark
		cover(func(x, y float64) bool { return math.Abs(x-c) <= 0.9 && y >= c-4 && y <= c+1.5 })
		cover(func(x, y float64) bool { return math.Hypot(x-c, y-c-3.6) <= 1.1 })
	case "busy": // three dots
		for _, cx := range []float64{c - 3, c, c + 3} {
			cx := cx
			cover(func(x, y float64) bool { return math.Hypot(x-cx, y-c) <= 1.1 })
		}
	}
	return img
}

func roundedBoxDist(x, y, half, r float64) float64 {
	qx, qy := math.Abs(x)-half+r, math.Abs(y)-half+r
	return math.Hypot(math.Max(qx, 0), math.Max(qy, 0)) + math.Min(math.Max(qx, qy), 0) - r
}

// States are the icon states the menu uses.
var States = []string{"ready", "starting", "stopped", "problem", "busy"}

// appIcon is the application icon: the ready glyph in white on a blue rounded square.
func appIcon(size int) *image.NRGBA {
	glyph := draw("ready", size*10/16)
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	half, r := float64(size)/2*0.9, float64(size)*0.18
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			d := roundedBoxDist(float64(x)+0.5-float64(size)/2, float64(y)+0.5-float64(size)/2, half, r)
			a := math.Max(0, math.Min(1, 0.5-d))
			if a > 0 {
				shade := 1 - 0.25*float64(y)/float64(size) // a light top-to-bottom gradient
				img.SetNRGBA(x, y, color.NRGBA{uint8(40 * shade), uint8(96 * shade), uint8(220 * shade), uint8(255 * a)})
			}
		}
	}
	off := (size - glyph.Bounds().Dx()) / 2
	for y := 0; y < glyph.Bounds().Dy(); y++ {
		for x := 0; x < glyph.Bounds().Dx(); x++ {
			if ga := glyph.NRGBAAt(x, y).A; ga > 0 {
				bg := img.NRGBAAt(x+off, y+off)
				t := float64(ga) / 255
				mix := func(c uint8) uint8 { return uint8(float64(c)*(1-t) + 255*t) }
				img.SetNRGBA(x+off, y+off, color.NRGBA{mix(bg.R), mix(bg.G), mix(bg.B), bg.A})
			}
		}
	}
	return img
}

func write(path string, img image.Image) {
	f, err := os.Create(path)
	if err == nil {
		err = png.Encode(f, img)
		f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-icns" { // the bundle's AppIcon.icns
		if err := writeICNS(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 2 && os.Args[1] == "-appicon" { // an .iconset for iconutil
		dir := os.Args[2]
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for _, pt := range []int{16, 32, 128, 256, 512} {
			write(filepath.Join(dir, fmt.Sprintf("icon_%dx%d.png", pt, pt)), appIcon(pt))
			write(filepath.Join(dir, fmt.Sprintf("icon_%dx%d@2x.png", pt, pt)), appIcon(2*pt))
		}
		return
	}
	dir := "assets/icons"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	for _, st := range States {
		write(filepath.Join(dir, st+".png"), drawOnGrid(st, TemplatePixels, 16))
	}
}
