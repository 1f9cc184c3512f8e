package cli

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// appleForwarder stands where Apple's runtime publishes the builder's port
// while sshd inside is not up yet: it accepts every connection and resets
// it (container-runtime-linux then logs an error, ConnectHandler.swift in
// apple/container). It counts the connections.
func appleForwarder(t *testing.T, port int) *atomic.Int64 {
	t.Helper()
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // close with a reset
			}
			c.Close()
		}
	}()
	return &n
}

// startUntilRun runs `wrapix-builder start` (a separate process) against the
// record-mode stand-in, whose container never answers SSH, and returns once
// `container run` has been called: from then on start waits for readiness.
func startUntilRun(t *testing.T, w *testenv.World) (done chan error, output func() string) {
	t.Helper()
	var out strings.Builder
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "start")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(30 * time.Second)
	for len(w.CallsStarting("run")) == 0 || !standinRunning(t) {
		if time.Now().After(deadline) {
			t.Fatalf("start never ran the container: %s\n%v", out.String(), w.Calls())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return done, out.String
}

// standinRunning: the stand-in has the builder's container running (a call
// is logged before the stand-in acts on it).
func standinRunning(t *testing.T) bool {
	out, _ := exec.Command(filepath.Join(testenv.Binaries(t), "container"), "inspect", "wrapix-builder").Output()
	return strings.Contains(string(out), `"running"`)
}

// issue 15.6: a slow start dials the published port a bounded number of
// times (it dialled every 10 ms: ~100 runtime errors a second).
func TestReadinessPollingBacksOff(t *testing.T) {
	w := testenv.New(t)
	done, output := startUntilRun(t, w)
	dials := appleForwarder(t, w.Port)
	t0 := time.Now()
	// Four seconds of a start that is not ready yet.
	select {
	case err := <-done:
		t.Fatalf("start ended (%v) against a port that only resets:\n%s", err, output())
	case <-time.After(4 * time.Second):
	}
	// ≤ one dial per 250 ms once backed off, plus the ramp (10 ms ×1.5…).
	n, d := dials.Load(), time.Since(t0)
	if limit := int64(d/(250*time.Millisecond)) + 12; n > limit {
		t.Fatalf("%d dials in %s of a slow start (limit %d)", n, d.Round(time.Millisecond), limit)
	}
	t.Logf("%d dials in %s", n, d.Round(time.Millisecond))
}

// issue 15.6: doctor during a start says "starting", not Local Network/VPN.
func TestDoctorSeesStartInProgress(t *testing.T) {
	w := testenv.New(t) // start-timeout 20 s
	done, _ := startUntilRun(t, w)
	appleForwarder(t, w.Port)
	r := wb(t, "doctor")
	if strings.Contains(r.stdout, "Local Network") || strings.Contains(r.stdout, "VPN capturing") {
		t.Fatalf("doctor read a start in progress as a Local Network problem:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "starting: `wrapix-builder start` (pid") {
		t.Fatalf("doctor does not say the builder is starting:\n%s", r.stdout)
	}
	select {
	case <-done:
		t.Fatal("start ended before doctor ran")
	default:
	}
}
