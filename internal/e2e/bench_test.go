package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// benchWorld is a started builder (warm store) for benchmarks.
func benchWorld(b *testing.B) *testenv.World {
	w := testenv.New(b)
	testenv.Require(b, "unshare", "ssh")
	w.E2E(testenv.Image(b, nil))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	mustWB(b, "start") // first start: initialise the store, not measured
	w.Serve()          // Nix connects to port, which serve owns
	return w
}

// BenchmarkStartToReady: `wrapix-builder start` until ready, against the raw
// time for the stand-in to boot the entrypoint to an SSH banner (`container
// run` of the same spec, then polling the port) — both from a stopped
// builder with an initialised store. Goal: start ≤ 1.5× raw.
func BenchmarkStartToReady(b *testing.B) {
	w := benchWorld(b)
	mustWB(b, "stop")
	// The raw baseline runs exactly what start ran.
	var run []string
	for _, c := range w.CallsStarting("run") {
		run = c
	}
	var startTotal, rawTotal time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		mustWB(b, "start")
		startTotal += time.Since(t0)
		mustWB(b, "stop")

		t0 = time.Now()
		if out, err := exec.Command("container", run...).CombinedOutput(); err != nil {
			b.Fatalf("raw run: %v %s", err, out)
		}
		waitBanner(b, "127.0.0.1:"+strconv.Itoa(w.Port))
		rawTotal += time.Since(t0)
		exec.Command("container", "stop", "wrapix-builder").Run()
		exec.Command("container", "delete", "wrapix-builder").Run()
	}
	s, r := ms(startTotal, b.N), ms(rawTotal, b.N)
	b.ReportMetric(s, "start-ms/op")
	b.ReportMetric(r, "raw-boot-to-banner-ms/op")
	b.ReportMetric(s/r, "ratio")
}

func waitBanner(b *testing.B, addr string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.SetDeadline(time.Now().Add(time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if err == nil && strings.HasPrefix(line, "SSH-") {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("no SSH banner")
}

func ms(d time.Duration, n int) float64 { return float64(d.Microseconds()) / 1000 / float64(n) }

// BenchmarkRemoteBuild: a trivial new derivation built through the builder
// with our generated configuration, against the same build through a
// hand-written minimal OpenSSH config, and against ours plus SSH connection
// reuse (ControlMaster), alternating in one run. Goal: ours ≤ 1.0× minimal.
func BenchmarkRemoteBuild(b *testing.B) {
	w := benchWorld(b)
	h := newHost(b)
	keys := filepath.Join(w.DataDir, "builder-keys")
	kh := filepath.Join(h.Work, "minimal_known_hosts")
	pub, _ := os.ReadFile(filepath.Join(keys, "host_ed25519.pub"))
	os.WriteFile(kh, []byte("minimal "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o644)
	// The baseline: a hand-written minimal /etc (ssh_config, machines line) read the same way as setup's.
	minimalRoot := filepath.Join(h.Work, "minimal-root")
	testenv.HostEtc(b, minimalRoot, testenv.HostNixConf)
	os.WriteFile(filepath.Join(minimalRoot, "etc/ssh/ssh_config"), []byte(fmt.Sprintf("Host minimal\n  HostName 127.0.0.1\n  Port %d\n  User builder\n  HostKeyAlias minimal\n  IdentityFile %s\n  UserKnownHostsFile %s\n", w.Port, filepath.Join(keys, "client_ed25519"), kh)), 0o644)
	machines, _ := os.ReadFile(filepath.Join(h.Root, "etc/nix/machines"))
	var line string
	for _, l := range strings.Split(string(machines), "\n") {
		if strings.HasPrefix(l, "ssh-ng://") {
			line = l
		}
	}
	minimalLine := strings.Replace(strings.Replace(line, "builder@wrapix-builder", "builder@minimal", 1), "/etc/nix/wrapix_builder_ed25519", filepath.Join(keys, "client_ed25519"), 1)
	os.WriteFile(filepath.Join(minimalRoot, "etc/nix/machines"), []byte(minimalLine+"\n"), 0o644)
	ctl := filepath.Join(h.Work, "ctl")
	os.MkdirAll(ctl, 0o700)

	variants := []struct {
		name, root, sshOpts string
	}{
		{"generated", h.Root, ""},
		{"minimal", minimalRoot, ""},
		{"generated+reuse", h.Root, "-o ControlMaster=auto -o ControlPath=" + ctl + "/%C -o ControlPersist=60"},
	}
	totals := make([]time.Duration, len(variants))
	clientNix := filepath.Join(h.Work, "bench-client")
	for i := 0; i < b.N; i++ {
		for v, variant := range variants {
			drv := h.derivation(fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), i, v), `echo $RANDOM > $out`)
			t0 := time.Now()
			out, err := h.buildOpts(clientNix, drv, variant.root, variant.sshOpts)
			totals[v] += time.Since(t0)
			if err != nil || !strings.Contains(out, "on 'ssh-ng://") {
				b.Fatalf("%s: %v\n%s", variant.name, err, out)
			}
		}
	}
	gen, min, reuse := ms(totals[0], b.N), ms(totals[1], b.N), ms(totals[2], b.N)
	b.ReportMetric(gen, "generated-ms/op")
	b.ReportMetric(min, "minimal-ms/op")
	b.ReportMetric(reuse, "generated+reuse-ms/op")
	b.ReportMetric(gen/min, "ratio")
}

// BenchmarkStatusVsOpenSSH against the real entrypoint (a root nix-daemon:
// status talks to its socket through the SSH connection).
func BenchmarkStatusVsOpenSSH(b *testing.B) {
	w := benchWorld(b)
	testenv.StatusVsSSH(b, w)
}
