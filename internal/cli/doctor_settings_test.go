package cli

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// doctor names a builder container made by an earlier wrapix-builder (store
// at /wrapix/store, CAP_SYS_ADMIN added) and says how to recreate it; one
// made now is fine.
func TestDoctorFlagsContainerWithEarlierSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		warn bool
	}{
		{[]string{"--volume", "wrapix-builder-nix:/wrapix/store", "--cap-add", "SYS_ADMIN"}, true},
		{[]string{"--volume", "wrapix-builder-nix:/nix"}, false},
	} {
		testenv.New(t)
		run := append([]string{"run", "--detach", "--name", "wrapix-builder", "--label", "org.wrapix.builder=1"}, tc.args...)
		if out, err := exec.Command("container", append(run, version.Image())...).CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		r := wb(t, "doctor", "--json")
		var doc struct {
			Checks []struct{ Name, Result, Detail, Fix string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("%v %s", err, r.stdout)
		}
		found := false
		for _, c := range doc.Checks {
			if c.Name == "builder container settings" {
				found = true
				if (c.Result == "warn") != tc.warn || tc.warn && !strings.Contains(c.Fix, "wrapix-builder stop && wrapix-builder start") {
					t.Errorf("%v: %+v", tc.args, c)
				}
			}
		}
		if !found {
			t.Errorf("%v: no container settings check in\n%s", tc.args, r.stdout)
		}
	}
}
