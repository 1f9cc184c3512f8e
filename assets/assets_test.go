package assets

import (
	"bytes"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed icons are exactly what assets/gen draws, black + alpha, and
// 32×32 px: systray forces a template icon to 16×16 pt on darwin
// (fyne.io/systray@v1.12.2 systray_darwin.m setIcon), so 32 px is exactly
// its Retina size — an 18 or 36 px image would be resampled, blurred.
func TestIconsAreReproducible(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("go", "run", "./gen", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, state := range []string{"ready", "starting", "stopped", "problem", "busy"} {
		got := Icon(state)
		name, size := state+".png", 32
		want, _ := os.ReadFile(filepath.Join(dir, name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what assets/gen draws: run `go run ./assets/gen assets/icons`", name)
		}
		img, err := png.Decode(bytes.NewReader(got))
		if err != nil || img.Bounds().Dx() != size || img.Bounds().Dy() != size {
			t.Fatalf("%s: %v %v", name, err, img.Bounds())
		}
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				r, g, b, _ := img.At(x, y).RGBA()
				if r|g|b != 0 {
					t.Fatalf("%s is not black + alpha at %d,%d", name, x, y)
				}
			}
		}
	}
}
