package cli

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// A first start with image-archive loads the image on every version: on
// 0.6–0.8 `image inspect` of a missing image prints only the code
// (`notFound: "images: <ref>"`), which start must read as "not loaded yet".
// Record mode: the run is refused on purpose (a name-in-use fault) so the test
// ends right after the image step instead of waiting for an SSH server.
func TestFirstStartLoadsImageArchiveEveryVersion(t *testing.T) {
	for _, v := range []string{"0.6.0", "0.7.0", "0.8.0", "0.12.0", "1.2.2"} {
		t.Run(v, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", v)
			t.Setenv("CONTAINER_STANDIN_IMAGES", "other:latest")
			t.Setenv("CONTAINER_STANDIN_FAULTS", "name-in-use:run")
			archive := testenv.OCIArchive(t, version.Image())
			w.WriteConfig(`image-archive = "` + archive + `"` + "\n")

			r := wb(t, "start")
			oneErrorLine(t, r, 9, "another process created the builder container")
			if loads := w.CallsStarting("image", "load"); len(loads) != 1 || !hasArgs(loads[0], "-i", archive) {
				t.Fatalf("image load calls: %v\n%s", loads, r.stderr)
			}
			runs := w.CallsStarting("run")
			if len(runs) != 1 || runs[0][len(runs[0])-1] != version.Image() {
				t.Fatalf("run calls: %v", runs)
			}
			if out, err := exec.Command("container", "image", "inspect", version.Image()).CombinedOutput(); err != nil {
				t.Fatalf("the image is not loaded: %v %s", err, out)
			}
			if !strings.Contains(r.stdout+r.stderr, "loading the builder image from "+archive) {
				t.Errorf("no progress line for the load: %q %q", r.stdout, r.stderr)
			}
		})
	}
}

// container-cli in config.toml names the CLI when it is neither on PATH nor
// in a well-known place; doctor says which binary it uses and why.
func TestContainerCLIFromConfig(t *testing.T) {
	w := testenv.New(t)
	standin := filepath.Join(testenv.Binaries(t), "container")
	t.Setenv("PATH", "/usr/bin:/bin")
	w.WriteConfig(`container-cli = "` + standin + `"` + "\n")
	if r := wb(t, "status"); r.code != 6 || !strings.Contains(r.stdout, "stopped") {
		t.Fatalf("status: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := wb(t, "doctor"); !strings.Contains(r.stdout, "at "+standin+" (set by container-cli in config.toml)") {
		t.Errorf("doctor:\n%s", r.stdout)
	}
	w.WriteConfig(`container-cli = "/nonexistent/container"` + "\n")
	oneErrorLine(t, wb(t, "status"), 3, "config.toml", `"container-cli"`, "no such file", "/usr/local/bin/container")
}
