package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// BenchmarkAppIdle runs the real app with the builder ready and leaves it
// idle for $WRAPIX_IDLE (default 5m), then reports its CPU time, the
// programs it started (container CLI and nix calls: the only ones it runs on
// its own) in the first minute and after, its resident memory, and the time
// from the builder's death to the menu showing it.
// Goals: < 0.5 s CPU, zero spawns after the first minute, < 30 MB, < 1 s.
func BenchmarkAppIdle(b *testing.B) {
	idle := 5 * time.Minute
	if v := os.Getenv("WRAPIX_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatal(err)
		}
		idle = d
	}
	for i := 0; i < b.N; i++ {
		benchIdleOnce(b, idle)
	}
}

func benchIdleOnce(b *testing.B, idle time.Duration) {
	testenv.Require(b, "sshd", "dbus-daemon")
	testenv.RequireBuilderUser(b)
	w := testenv.New(b)
	b.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	addr, bus := startBus(b)
	bin := testenv.Binaries(b)
	appBin := buildApp(b)
	// Count the app's nix calls with a wrapper in front of the real nix.
	wrap := b.TempDir()
	nixCalls := filepath.Join(wrap, "nix.calls")
	realNix, _ := exec.LookPath("nix")
	os.WriteFile(filepath.Join(wrap, "nix"), []byte("#!/bin/sh\necho x >> '"+nixCalls+"'\nexec '"+realNix+"' \"$@\"\n"), 0o755)
	if out, err := exec.Command(filepath.Join(bin, "wrapix-builder"), "start").CombinedOutput(); err != nil {
		b.Fatalf("start: %v %s", err, out)
	}
	app := exec.Command(appBin, "--cli", filepath.Join(bin, "wrapix-builder"))
	app.Env = append(os.Environ(), "DBUS_SESSION_BUS_ADDRESS="+addr, "PATH="+wrap+":"+os.Getenv("PATH"))
	if err := app.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { app.Process.Kill(); app.Wait() }()
	bus.waitMenu(b, 20*time.Second, "ready", nil, statusIs("Builder: ready"))

	spawns := func() int { return len(w.Calls()) + lines(nixCalls) }
	cpu := func() time.Duration { return cpuTime(b, app.Process.Pid) }
	b.ResetTimer()
	start, cpu0, sp0 := time.Now(), cpu(), spawns()
	time.Sleep(min(idle, time.Minute))
	sp1 := spawns()
	if idle > time.Minute {
		time.Sleep(idle - time.Minute)
	}
	sp2, cpu1 := spawns(), cpu()
	elapsed := time.Since(start)
	rss := rssBytes(b, app.Process.Pid)

	t0 := time.Now()
	if out, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		b.Fatalf("kill: %v %s", err, out)
	}
	bus.waitMenu(b, 10*time.Second, "stopped", nil, statusIs("Builder: stopped"))
	death := time.Since(t0)
	b.StopTimer()

	b.ReportMetric(elapsed.Seconds(), "idle-s")
	b.ReportMetric((cpu1 - cpu0).Seconds(), "cpu-s")
	b.ReportMetric(float64(sp1-sp0), "spawns-first-minute")
	b.ReportMetric(float64(sp2-sp1), "spawns-after-first-minute")
	b.ReportMetric(float64(rss)/(1<<20), "rss-MB")
	b.ReportMetric(float64(death.Microseconds())/1000, "death-to-menu-ms")
}

func lines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

func rssBytes(b *testing.B, pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
