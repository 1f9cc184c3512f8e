package main

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The .icns parses back: the header's length is the file's, every entry is
// a PNG of its type's size, and libicns (Debian's icnsutils) reads the
// container and decodes the entries it knows.
func TestICNS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "AppIcon.icns")
	if err := writeICNS(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:4]) != "icns" || int(binary.BigEndian.Uint32(data[4:8])) != len(data) {
		t.Fatalf("header %q %d, file %d bytes", data[:4], binary.BigEndian.Uint32(data[4:8]), len(data))
	}
	want := map[string]int{"icp4": 16, "ic11": 32, "icp5": 32, "ic12": 64, "ic07": 128, "ic13": 256, "ic08": 256, "ic14": 512, "ic09": 512, "ic10": 1024}
	seen := map[string]bool{}
	for off := 8; off < len(data); {
		if off+8 > len(data) {
			t.Fatalf("truncated entry header at %d", off)
		}
		typ, n := string(data[off:off+4]), int(binary.BigEndian.Uint32(data[off+4:off+8]))
		if n < 8 || off+n > len(data) {
			t.Fatalf("%s: length %d runs past the file", typ, n)
		}
		img, err := png.Decode(bytes.NewReader(data[off+8 : off+n]))
		if err != nil {
			t.Fatalf("%s: not a PNG: %v", typ, err)
		}
		px, ok := want[typ]
		if b := img.Bounds(); !ok || b.Dx() != px || b.Dy() != px {
			t.Errorf("%s: %v, want %d px", typ, img.Bounds(), px)
		}
		seen[typ] = true
		off += n
	}
	if len(seen) != len(want) {
		t.Errorf("entries %v, want %v", seen, want)
	}

	if _, err := exec.LookPath("icns2png"); err != nil {
		t.Fatal("icns2png is required (apt-get install icnsutils; make deps)")
	}
	out, err := exec.Command("icns2png", "-l", path).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10 elements total") {
		t.Fatalf("libicns cannot list it: %v\n%s", err, out)
	}
	for typ, size := range map[string]string{"ic08": "256x256", "ic09": "512x512", "ic10": "1024x1024"} {
		if !regexp.MustCompile("'" + typ + "' " + size + " 32-bit icon").Match(out) {
			t.Errorf("libicns does not decode %s as %s:\n%s", typ, size, out)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("icns2png", "-x", "-s", "512x512", "-o", dir, path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("icns2png -x: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	if len(files) == 0 {
		t.Fatal("icns2png extracted nothing")
	}
	f, _ := os.Open(files[0])
	defer f.Close()
	if cfg, err := png.DecodeConfig(f); err != nil || cfg.Width != 512 {
		t.Errorf("extracted %s: %v %+v", files[0], err, cfg)
	}
}
