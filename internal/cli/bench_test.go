package cli

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// BenchmarkStatusVsOpenSSH measures `wrapix-builder status --json` (a new
// process each time: container CLI, SSH with the pinned key, nix-daemon
// handshake, setup check) against the baseline `ssh -o BatchMode=yes … true`
// to the same running sshd, in the same run, alternating.
// Goal: status at least 5× faster than the ssh baseline.
func BenchmarkStatusVsOpenSSH(b *testing.B) {
	testenv.Require(b, "sshd", "ssh")
	testenv.RequireBuilderUser(b)
	w := testenv.New(b)
	b.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	bin := filepath.Join(testenv.Binaries(b), "wrapix-builder")
	if out, err := exec.Command(bin, "start").CombinedOutput(); err != nil {
		b.Fatalf("start: %v\n%s", err, out)
	}
	keys := filepath.Join(w.DataDir, "builder-keys")
	kh := filepath.Join(b.TempDir(), "known_hosts")
	if out, err := exec.Command("sh", "-c", `printf '[127.0.0.1]:%s %s\n' "$1" "$(cut -d' ' -f1,2 "$2")" > "$3"`, "sh",
		strconv.Itoa(w.Port), filepath.Join(keys, "host_ed25519.pub"), kh).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	sshArgs := []string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + kh,
		"-i", filepath.Join(keys, "client_ed25519"), "-p", strconv.Itoa(w.Port), "builder@127.0.0.1", "true"}
	var statusTotal, sshTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if out, err := exec.Command(bin, "status", "--json").CombinedOutput(); err != nil {
			b.Fatalf("status: %v\n%s", err, out)
		}
		t1 := time.Now()
		if out, err := exec.Command("ssh", sshArgs...).CombinedOutput(); err != nil {
			b.Fatalf("ssh: %v\n%s", err, out)
		}
		statusTotal += t1.Sub(t0)
		sshTotal += time.Since(t1)
	}
	statusMs := float64(statusTotal.Microseconds()) / 1000 / float64(b.N)
	sshMs := float64(sshTotal.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(statusMs, "status-ms/op")
	b.ReportMetric(sshMs, "openssh-true-ms/op")
	b.ReportMetric(sshMs/statusMs, "x-faster")
}
