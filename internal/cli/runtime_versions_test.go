package cli

import (
	"os/exec"
	"strings"
	"testing"

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
			archive := testenv.OCIArchive(t, "wrapix-builder:latest")
			w.WriteConfig(`image-archive = "` + archive + `"` + "\n")

			r := wb(t, "start")
			oneErrorLine(t, r, 9, "another process created the builder container")
			if loads := w.CallsStarting("image", "load"); len(loads) != 1 || !hasArgs(loads[0], "-i", archive) {
				t.Fatalf("image load calls: %v\n%s", loads, r.stderr)
			}
			runs := w.CallsStarting("run")
			if len(runs) != 1 || runs[0][len(runs[0])-1] != "wrapix-builder:latest" {
				t.Fatalf("run calls: %v", runs)
			}
			if out, err := exec.Command("container", "image", "inspect", "wrapix-builder:latest").CombinedOutput(); err != nil {
				t.Fatalf("the image is not loaded: %v %s", err, out)
			}
			if !strings.Contains(r.stdout+r.stderr, "loading the builder image from "+archive) {
				t.Errorf("no progress line for the load: %q %q", r.stdout, r.stderr)
			}
		})
	}
}
