package assets

import (
	"bytes"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed icons are exactly what assets/gen draws, black + alpha, 1x and 2x.
func TestIconsAreReproducible(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("go", "run", "./gen", dir).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	for _, state := range []string{"ready", "starting", "stopped", "problem", "busy"} {
		for _, retina := range []bool{false, true} {
			got := Icon(state, retina)
			name := state + ".png"
			size := 18
			if retina {
				name, size = state+"@2x.png", 36
			}
			want, _ := os.ReadFile(filepath.Join(dir, name))
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from what assets/gen draws: run `go run ./assets/gen assets/icons`", name)
			}
			img, err := png.Decode(bytes.NewReader(got))
			if err != nil || img.Bounds().Dx() != size {
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
}
