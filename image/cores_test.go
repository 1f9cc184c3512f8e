package image

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Issue 18 point 9: the builder ran `cores = 0` (every core for each job)
// beside max-jobs, and WRAPIX_CORES was never read. The entrypoint's own
// `cores =` line, run by sh: each job gets cpus / max-jobs, at least 1.
func TestEntrypointCoresShareTheCPUs(t *testing.T) {
	data, err := os.ReadFile("entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, `echo "cores = `) {
			line = l
		}
	}
	if line == "" {
		t.Fatal("entrypoint.sh has no cores line")
	}
	for _, c := range []struct{ cores, jobs, want string }{
		{"8", "4", "2"}, {"6", "4", "1"}, {"4", "8", "1"}, {"16", "1", "16"}, {"64", "3", "21"},
		{"", "4", "0"}, // an older CLI that does not say: Nix's default, all cores
		{"x", "4", "0"}, {"8", "0", "0"},
	} {
		cmd := exec.Command("sh", "-eu", "-c", line)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		if c.cores != "" {
			cmd.Env = append(cmd.Env, "WRAPIX_CORES="+c.cores)
		}
		cmd.Env = append(cmd.Env, "WRAPIX_MAX_JOBS="+c.jobs)
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "cores = "+c.want {
			t.Errorf("cores=%q max-jobs=%q: %q %v, want cores = %s", c.cores, c.jobs, got, err, c.want)
		}
	}
}
