package runtime

import "testing"

// Shapes as Apple's encoders print them (VolumeInspect.swift: 0.6 … 0.12
// the Volume struct, 1.0 … 1.2.2 a VolumeResource), '/' escaped.
func TestParseVolumesBothShapes(t *testing.T) {
	old := `[{"createdAt":"2026-01-02T03:04:05Z","driver":"local","format":"ext4","labels":{},"name":"wrapix-builder-nix","options":{"journal":"ordered"},"sizeInBytes":549755813888,"source":"\/Users\/a\/Library\/Application Support\/com.apple.container\/volumes\/wrapix-builder-nix\/volume.img"}]`
	v1 := `[
  {
    "configuration" : {
      "creationDate" : "2026-01-02T03:04:05Z",
      "driver" : "local",
      "format" : "ext4",
      "labels" : {},
      "name" : "wrapix-builder-nix",
      "options" : {},
      "sizeInBytes" : 549755813888,
      "source" : "\/Users\/a\/Library\/Application Support\/com.apple.container\/volumes\/wrapix-builder-nix\/volume.img"
    },
    "id" : "wrapix-builder-nix"
  }
]`
	for _, in := range []string{old, v1} {
		vs, err := ParseVolumes([]byte(in))
		if err != nil || len(vs) != 1 {
			t.Fatalf("%v %v", vs, err)
		}
		if v := vs[0]; v.Name != "wrapix-builder-nix" || v.SizeBytes != 512<<30 ||
			v.Source != "/Users/a/Library/Application Support/com.apple.container/volumes/wrapix-builder-nix/volume.img" {
			t.Errorf("%+v", v)
		}
	}
	for _, bad := range []string{`{}`, `[{"source":"/x"}]`, `[{"name":"x","sizeInBytes":-1}]`, `<html>`} {
		if _, err := ParseVolumes([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
