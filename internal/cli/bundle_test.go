package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// 17.4: the CLI of an app bundle, run through a symlink as a cask or a
// profile links it, with no image loaded, no image-archive configured and
// an image-flake nobody can reach: doctor says the image comes from the
// bundle, and start loads the bundle's archive (no Nix, no network).
// Record mode: the run is refused on purpose (a name-in-use fault) so the
// test ends right after the image step.
func TestFirstStartFromBundleLoadsItsImage(t *testing.T) {
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_IMAGES", "other:latest")
	t.Setenv("CONTAINER_STANDIN_FAULTS", "name-in-use:run")
	w.WriteConfig(`image-flake = "path:/nonexistent/wrapix-builder"` + "\n")

	contents := filepath.Join(t.TempDir(), "Wrapix Builder.app", "Contents")
	exe := filepath.Join(contents, "MacOS", "wrapix-builder")
	archive := filepath.Join(contents, "Resources", lifecycle.BundledImageName)
	for _, d := range []string{filepath.Dir(exe), filepath.Dir(archive)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := os.ReadFile(filepath.Join(testenv.Binaries(t), "wrapix-builder"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	tar, err := os.ReadFile(testenv.OCIArchive(t, version.Image()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(archive, tar, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "wrapix-builder")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		var out, errb bytes.Buffer
		cmd := exec.Command(link, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}

	d := run("doctor")
	if !strings.Contains(d.stdout, "start loads it from "+archive+" (the app bundle)") {
		t.Errorf("doctor does not say the image comes from the bundle:\n%s", d.stdout)
	}
	r := run("start")
	oneErrorLine(t, r, 9, "another process created the builder container")
	if loads := w.CallsStarting("image", "load"); len(loads) != 1 || !hasArgs(loads[0], "-i", archive) {
		t.Fatalf("image load calls: %v\n%s", loads, r.stderr)
	}
	if strings.Contains(r.stderr, "building it with Nix") {
		t.Errorf("start built the image although the bundle has it:\n%s", r.stderr)
	}
	if out, err := exec.Command("container", "image", "inspect", version.Image()).CombinedOutput(); err != nil {
		t.Fatalf("the image is not loaded: %v %s", err, out)
	}
}
