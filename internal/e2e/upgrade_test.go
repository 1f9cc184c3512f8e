package e2e

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// Issue 15, the upgrade path: release A starts its image on a fresh store
// and stops; the user installs release B (here the same CLI with another
// version, as -ldflags stamps it) whose archive holds image B. B's start
// loads and runs image B on the same store volume, the paths A's builder
// made are still valid, and image A is gone.
func TestUpgradeRunsTheNewImageOnTheSameStore(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	saved := version.Version
	t.Cleanup(func() { version.Version = saved })

	version.Version = "0.1.0"
	t.Setenv("CONTAINER_STANDIN_IMAGES", version.ImageFor("0.1.0"))
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	r := wb(t, "ssh", "echo made-by-0.1.0 > /tmp/a && nix-store --add /tmp/a")
	if r.code != 0 {
		t.Fatalf("%s%s", r.stdout, r.stderr)
	}
	planted := strings.TrimSpace(r.stdout)
	mustWB(t, "stop")

	version.Version = "0.2.0"
	archive := testenv.OCIArchive(t, version.ImageFor("0.2.0"))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image-archive = "` + archive + `"` + "\n")
	r = wb(t, "start")
	if r.code != 0 || !strings.Contains(r.stdout+r.stderr, "a new builder image for 0.2.0; the store is kept") {
		t.Fatalf("start after the upgrade: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	out, err := exec.Command("container", "inspect", "wrapix-builder").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"wrapix-builder:0.2.0"`) {
		t.Fatalf("the builder does not run image 0.2.0: %v\n%s", err, out)
	}
	if out, err := exec.Command("container", "image", "list", "-q").CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "wrapix-builder:0.2.0" {
		t.Errorf("images after the upgrade: %v %q", err, out)
	}
	if n := strings.Count(logs(w), "initialising the store (first start)"); n != 1 {
		t.Errorf("the store was initialised %d times: the upgrade must keep it\n%s", n, logs(w))
	}
	if r := wb(t, "ssh", "nix-store --check-validity "+planted+" && echo valid"); r.code != 0 || !strings.Contains(r.stdout, "valid") {
		t.Errorf("a path made before the upgrade is not valid: %d %s%s", r.code, r.stdout, r.stderr)
	}
	verify(t)
}
