package cli

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// loadedImages is `container image list -q`: what the runtime holds.
func loadedImages(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("container", "image", "list", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("image list: %v %s", err, out)
	}
	return strings.Fields(string(out))
}

// Issue 15: after an upgrade the older release's image is still loaded (every
// release was wrapix-builder:latest before), and the new release's archive is
// at hand. Start loads and runs the new image, says so, and deletes the older
// releases' images, never another repository's; the store volume is kept.
func TestStartAfterUpgradeRunsTheNewImage(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_IMAGES", "wrapix-builder:latest,wrapix-builder:0.0.9,other:latest")
	archive := testenv.OCIArchive(t, version.Image())
	w.WriteConfig(`image-archive = "` + archive + `"` + "\n")

	r := wb(t, "start")
	if r.code != 0 {
		t.Fatalf("start after an upgrade: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if loads := w.CallsStarting("image", "load"); len(loads) != 1 || !hasArgs(loads[0], "-i", archive) {
		t.Fatalf("image load calls: %v\n%s", loads, r.stderr)
	}
	if runs := w.CallsStarting("run"); len(runs) != 1 || runs[0][len(runs[0])-1] != version.Image() {
		t.Fatalf("run calls: %v", runs)
	}
	if want := "a new builder image for " + version.Version + "; the store is kept"; !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("start does not say %q:\n%s%s", want, r.stdout, r.stderr)
	}
	if got, want := loadedImages(t), []string{"other:latest", version.Image()}; !slices.Equal(got, want) {
		t.Errorf("images after the upgrade's start: %q, want %q", got, want)
	}
	if rm := w.CallsStarting("volume", "rm"); len(rm) != 0 {
		t.Errorf("the store volume was removed: %v", rm)
	}

	// The next start has nothing older to delete, and says nothing about it.
	if r := wb(t, "stop"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	r = wb(t, "start")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "a new builder image") {
		t.Errorf("second start: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if deletes := w.CallsStarting("image", "delete"); len(deletes) != 1 {
		t.Errorf("image delete calls: %v", deletes)
	}
}

// An image the user configured is theirs: start never deletes it, nor any
// other image, whatever older builder images are loaded.
func TestStartNeverDeletesAConfiguredImage(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	for _, image := range []string{"wrapix-builder:latest", "example/builder:pinned"} {
		t.Run(image, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
			t.Setenv("CONTAINER_STANDIN_IMAGES", "wrapix-builder:latest,wrapix-builder:0.0.9,example/builder:pinned")
			w.WriteConfig(`image = "` + image + `"` + "\n")
			before := loadedImages(t)
			r := wb(t, "start")
			if r.code != 0 {
				t.Fatalf("start: %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			if runs := w.CallsStarting("run"); len(runs) != 1 || runs[0][len(runs[0])-1] != image {
				t.Fatalf("run calls: %v", runs)
			}
			if got := loadedImages(t); !slices.Equal(got, before) {
				t.Errorf("images %q, before the start %q", got, before)
			}
			if d := w.CallsStarting("image", "delete"); len(d) != 0 {
				t.Errorf("image delete calls: %v", d)
			}
		})
	}
}

// Upgraded while the builder runs: it keeps the older image until it
// stops; start says which image runs and how to switch, and deletes nothing.
func TestStartSaysTheRunningBuilderHasAnOlderImage(t *testing.T) {
	testenv.Require(t, "sshd")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	t.Setenv("CONTAINER_STANDIN_IMAGES", "wrapix-builder:0.0.9")
	w.WriteConfig(`image = "wrapix-builder:0.0.9"` + "\n") // as release 0.0.9 ran it
	if r := wb(t, "start"); r.code != 0 {
		t.Fatalf("start: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	w.WriteConfig("") // the upgrade: the default image is this release's
	r := wb(t, "start")
	want := "the builder runs the image wrapix-builder:0.0.9, not " + version.Image() + "; to run it: `wrapix-builder stop`, then `wrapix-builder start`"
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, want) {
		t.Errorf("start on a builder running an older image: %d, want %q\n%s%s", r.code, want, r.stdout, r.stderr)
	}
	if d := w.CallsStarting("image", "delete"); len(d) != 0 {
		t.Errorf("image delete calls while the older image runs: %v", d)
	}
}
