package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// directRoot copies setup's /etc (h.Root) with one change: the drop-in's
// Port is the container's own port, so Nix bypasses serve. Everything else
// (alias, pinned key, options) is the same, for a like-for-like baseline.
func directRoot(b *testing.B, w *testenv.World, h *host) string {
	root := filepath.Join(h.Work, "direct-root")
	if out, err := exec.Command("cp", "-a", h.Root, root).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	p := filepath.Join(root, "etc/ssh/ssh_config.d/100-wrapix-builder.conf")
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	from, to := "Port "+strconv.Itoa(w.NixPort)+"\n", "Port "+strconv.Itoa(w.Port)+"\n"
	if !strings.Contains(string(data), from) {
		b.Fatalf("the drop-in has no %q:\n%s", from, data)
	}
	os.WriteFile(p, []byte(strings.Replace(string(data), from, to, 1)), 0o644)
	return root
}

// BenchmarkWakerWarmBuild: a trivial new derivation built through serve
// against the same build straight to the container's port, alternating, the
// builder running. Goal: ≤ 1.05× direct.
func BenchmarkWakerWarmBuild(b *testing.B) {
	w, h := benchWakeWorld(b, `idle-stop = "0"`+"\n")
	mustWB(b, "start")
	direct := directRoot(b, w, h)
	clientNix := filepath.Join(h.Work, "bench-client")
	var via, straight time.Duration
	for i := 0; i < b.N; i++ {
		for v, root := range []string{h.Root, direct} {
			drv := h.derivation(fmt.Sprintf("warm-%d-%d-%d", time.Now().UnixNano(), i, v), `echo $RANDOM > $out`)
			t0 := time.Now()
			out, err := h.buildOpts(clientNix, drv, root, "")
			d := time.Since(t0)
			if err != nil || !strings.Contains(out, "on 'ssh-ng://") {
				b.Fatalf("%v\n%s", err, out)
			}
			if v == 0 {
				via += d
			} else {
				straight += d
			}
		}
	}
	s, d := ms(via, b.N), ms(straight, b.N)
	b.ReportMetric(s, "via-serve-ms/op")
	b.ReportMetric(d, "direct-ms/op")
	b.ReportMetric(s/d, "ratio")
}

// BenchmarkWakerUpload: a derivation whose input is a new 256 MB file, so
// Nix uploads it to the builder; the input is imported into the client's
// store beforehand (not measured), then `nix-store --realise` is timed
// through serve and straight to the container's port, alternating. Goal:
// ≤ 1.05× direct.
func BenchmarkWakerUpload(b *testing.B) {
	w, h := benchWakeWorld(b, `idle-stop = "0"`+"\n")
	mustWB(b, "start")
	direct := directRoot(b, w, h)
	clientNix := filepath.Join(h.Work, "upload-client")
	blob := make([]byte, 256<<20)
	var via, straight time.Duration
	runs := min(b.N, 3) // 2 × 256 MB a run: make bench's 10x would take minutes
	for i := 0; i < runs; i++ {
		for v, root := range []string{h.Root, direct} {
			rand.Read(blob)
			in := filepath.Join(h.Work, fmt.Sprintf("blob-%d-%d", i, v))
			if err := os.WriteFile(in, blob, 0o644); err != nil {
				b.Fatal(err)
			}
			expr := filepath.Join(h.Work, fmt.Sprintf("upload-%d-%d.nix", i, v))
			os.WriteFile(expr, []byte(`let bb = builtins.path { path = `+filepath.Join(h.Work, "bb")+`; name = "busybox"; }; in
derivation { name = "upload"; system = "x86_64-linux"; builder = "${bb}/bin/sh"; PATH = "${bb}/bin";
  blob = builtins.path { path = `+in+`; name = "blob"; };
  args = [ "-c" "wc -c < $blob > $out" ]; }
`), 0o644)
			inst := testenv.HostCommand(b, root, clientNix, `exec "$@"`, nil, "nix-instantiate", expr)
			drvOut, err := inst.Output()
			if err != nil {
				b.Fatalf("instantiate: %v", err)
			}
			drv := strings.TrimSpace(string(drvOut))
			t0 := time.Now()
			out, err := testenv.HostCommand(b, root, clientNix, `exec "$@"`, nil, "nix-store", "--realise", drv).CombinedOutput()
			d := time.Since(t0)
			if err != nil {
				b.Fatalf("realise: %v\n%s", err, out)
			}
			os.Remove(in)
			if v == 0 {
				via += d
			} else {
				straight += d
			}
		}
	}
	s, d := ms(via, runs), ms(straight, runs)
	b.ReportMetric(s, "via-serve-ms/op")
	b.ReportMetric(d, "direct-ms/op")
	b.ReportMetric(s/d, "ratio")
}

// BenchmarkColdOnDemandBuild: builder stopped (store initialised), a new
// derivation built through serve (which starts the builder), against
// `wrapix-builder start` and then the same kind of build straight to the
// container's port. Goal: ≤ 1.1×.
func BenchmarkColdOnDemandBuild(b *testing.B) {
	w, h := benchWakeWorld(b, `idle-stop = "0"`+"\n")
	direct := directRoot(b, w, h)
	clientNix := filepath.Join(h.Work, "cold-client")
	var cold, manual time.Duration
	for i := 0; i < b.N; i++ {
		mustWB(b, "stop")
		drv := h.derivation(fmt.Sprintf("cold-%d-%d", time.Now().UnixNano(), i), `echo $RANDOM > $out`)
		t0 := time.Now()
		if out, err := h.buildOpts(clientNix, drv, h.Root, ""); err != nil {
			b.Fatalf("cold build: %v\n%s", err, out)
		}
		cold += time.Since(t0)

		mustWB(b, "stop")
		drv = h.derivation(fmt.Sprintf("manual-%d-%d", time.Now().UnixNano(), i), `echo $RANDOM > $out`)
		t0 = time.Now()
		mustWB(b, "start")
		if out, err := h.buildOpts(clientNix, drv, direct, ""); err != nil {
			b.Fatalf("build after start: %v\n%s", err, out)
		}
		manual += time.Since(t0)
	}
	c, m := ms(cold, b.N), ms(manual, b.N)
	b.ReportMetric(c, "on-demand-ms/op")
	b.ReportMetric(m, "start+build-ms/op")
	b.ReportMetric(c/m, "ratio")
}

// BenchmarkWakerIdle: serve with the builder stopped for WRAPIX_IDLE
// (default 30s): CPU time used, container CLI calls made, resident memory.
// Goal: no work at all (0 calls, ~0 CPU) and < 15 MB RSS.
func BenchmarkWakerIdle(b *testing.B) {
	window := 30 * time.Second
	if v := os.Getenv("WRAPIX_IDLE"); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			window = d
		}
	}
	w, _ := benchWakeWorld(b, "")
	k := w.Serve()
	pid := k.Cmd.Process.Pid
	// One window whatever b.N (make bench runs 10x): the metrics are per window.
	calls0, cpu0 := len(w.Calls()), cpuTime(b, pid)
	time.Sleep(window)
	calls, cpu := len(w.Calls())-calls0, cpuTime(b, pid)-cpu0
	b.ReportMetric(float64(calls), "container-calls")
	b.ReportMetric(cpu.Seconds(), "cpu-s")
	b.ReportMetric(float64(rssKiB(b, pid))/1024, "rss-MB")
	b.ReportMetric(window.Seconds(), "window-s")
}

// cpuTime is utime + stime of pid (clock ticks of 10 ms on Linux).
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// benchWakeWorld: an initialised, stopped builder, setup's /etc, serve running
// (except for the idle benchmark, which starts its own).
func benchWakeWorld(b *testing.B, config string) (*testenv.World, *host) {
	w := testenv.New(b)
	testenv.Require(b, "unshare", "ssh")
	w.E2E(testenv.Image(b, nil))
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + config)
	mustWB(b, "start")
	mustWB(b, "stop")
	h := newHost(b)
	if !strings.Contains(b.Name(), "Idle") {
		w.Serve()
	}
	return w, h
}
