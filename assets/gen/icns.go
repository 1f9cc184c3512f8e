package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image/png"
	"os"
)

// icnsTypes are the PNG-carrying ICNS entries (OSType → pixel size) of a
// full macOS app icon: 16–512 pt at 1x and 2x, as iconutil writes them from
// an .iconset. Format: "icns" + big-endian total length, then entries of
// OSType + big-endian length (header included) + a PNG (Apple Icon Image
// format; e.g. libicns' icns.h, which icns2png in the tests reads with).
var icnsTypes = []struct {
	osType string
	px     int
}{
	{"icp4", 16}, {"ic11", 32}, // 16 pt, 1x / 2x
	{"icp5", 32}, {"ic12", 64}, // 32 pt
	{"ic07", 128}, {"ic13", 256}, // 128 pt
	{"ic08", 256}, {"ic14", 512}, // 256 pt
	{"ic09", 512}, {"ic10", 1024}, // 512 pt
}

// icns encodes the app icon as an .icns file without iconutil (which the
// Nix sandbox does not have).
func icns() ([]byte, error) {
	var body bytes.Buffer
	for _, t := range icnsTypes {
		var img bytes.Buffer
		if err := png.Encode(&img, appIcon(t.px)); err != nil {
			return nil, err
		}
		body.WriteString(t.osType)
		binary.Write(&body, binary.BigEndian, uint32(8+img.Len()))
		body.Write(img.Bytes())
	}
	var out bytes.Buffer
	out.WriteString("icns")
	binary.Write(&out, binary.BigEndian, uint32(8+body.Len()))
	out.Write(body.Bytes())
	return out.Bytes(), nil
}

func writeICNS(path string) error {
	data, err := icns()
	if err != nil {
		return fmt.Errorf("encode the app icon: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
