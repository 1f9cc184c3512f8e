package lifecycle

import (
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
)

// Only our repository's other tags are an older release's image; the
// listing may name it normalized. Nothing else is ever deleted.
func TestOlderBuilderImage(t *testing.T) {
	current := version.ImageFor("0.2.0")
	for ref, want := range map[string]bool{
		"wrapix-builder:latest":                  true,
		"wrapix-builder:0.1.0":                   true,
		"docker.io/library/wrapix-builder:0.1.0": true,
		"wrapix-builder:0.2.0":                   false,
		"docker.io/library/wrapix-builder:0.2.0": false,
		"wrapix-builder@sha256:0123":             false,
		"example/wrapix-builder:0.1.0":           false,
		"localhost:5000/wrapix-builder:0.1.0":    false,
		"wrapix-builder-dev:0.1.0":               false,
		"ghcr.io/wrapix/wrapix-builder:0.1.0":    false,
		"other:latest":                           false,
		"wrapix-builder":                         false,
		"docker.io/library/wrapix-builder:":      false,
	} {
		if got := olderBuilderImage(ref, current); got != want {
			t.Errorf("olderBuilderImage(%q) = %v, want %v", ref, got, want)
		}
	}
}
