package testenv

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// StatusVsSSH measures `wrapix-builder status --json` (a new process each
// time: container CLI, SSH with the pinned key, nix-daemon handshake, setup
// check) against `ssh -o BatchMode=yes … true` to the same running sshd, in
// the same run, alternating. The builder must be running.
func StatusVsSSH(b *testing.B, w *World) {
	bin := filepath.Join(Binaries(b), "wrapix-builder")
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
