package cli

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// BenchmarkStatusVsOpenSSH: `status --json` against `ssh … true`, with the
// stand-in's sshd mode (no root daemon there: the probe falls back to
// `nix-daemon --stdio`). internal/e2e has the same against the real
// entrypoint. Goal: status at least 5× faster than the ssh baseline.
func BenchmarkStatusVsOpenSSH(b *testing.B) {
	testenv.Require(b, "sshd", "ssh")
	testenv.RequireBuilderUser(b)
	w := testenv.New(b)
	b.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	bin := filepath.Join(testenv.Binaries(b), "wrapix-builder")
	if out, err := exec.Command(bin, "start").CombinedOutput(); err != nil {
		b.Fatalf("start: %v\n%s", err, out)
	}
	testenv.StatusVsSSH(b, w)
}
