package cli

import (
	"slices"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// x86_64-linux in systems runs the builder with `--rosetta`, which container
// has from 0.7.0: on 0.6.0 start stops before touching anything, with one
// error naming the version needed, and doctor fails the same check.
// Without x86_64-linux no version is asked for Rosetta. Record mode: the run
// is refused on purpose (name-in-use) so the test ends at the run.
func TestX86SystemRunsWithRosetta(t *testing.T) {
	for _, tc := range []struct {
		version, systems string
		rosetta          bool
	}{
		{"0.7.0", `["aarch64-linux", "x86_64-linux"]`, true},
		{"1.2.2", `["x86_64-linux"]`, true},
		{"1.2.2", `["aarch64-linux"]`, false},
		{"0.6.0", `["aarch64-linux"]`, false},
	} {
		t.Run(tc.version+tc.systems, func(t *testing.T) {
			w := testenv.New(t)
			t.Setenv("CONTAINER_STANDIN_VERSION", tc.version)
			t.Setenv("CONTAINER_STANDIN_FAULTS", "name-in-use:run")
			w.WriteConfig("systems = " + tc.systems + "\n")
			r := wb(t, "start")
			oneErrorLine(t, r, 9, "another process created the builder container")
			runs := w.CallsStarting("run")
			if len(runs) != 1 || slices.Contains(runs[0], "--rosetta") != tc.rosetta {
				t.Fatalf("run calls: %v, want --rosetta %v", runs, tc.rosetta)
			}
			doc := wb(t, "doctor").stdout
			if strings.Contains(doc, "x86_64-linux (Rosetta)") != tc.rosetta {
				t.Fatalf("doctor's Rosetta check, want %v:\n%s", tc.rosetta, doc)
			}
		})
	}
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_VERSION", "0.6.0")
	w.WriteConfig(`systems = ["aarch64-linux", "x86_64-linux"]` + "\n")
	oneErrorLine(t, wb(t, "start"), 4, "x86_64-linux builds need `container run --rosetta`", "container 0.6.0 does not have", "0.7.0 or newer")
	if calls := w.Calls(); slices.ContainsFunc(calls, func(c []string) bool { return len(c) > 0 && (c[0] == "run" || c[0] == "system") }) {
		t.Fatalf("start went on after the version check: %v", calls)
	}
	doc := wb(t, "doctor").stdout
	if !strings.Contains(doc, "x86_64-linux (Rosetta)") || !strings.Contains(doc, "0.7.0 or newer") {
		t.Fatalf("doctor on 0.6.0:\n%s", doc)
	}
}
