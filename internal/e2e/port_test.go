package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// The local port: what another user on the Mac can do through it (issue 16
// points 11–13, docs/local-port.md).

// sshHello connects to the Nix port and says what every SSH client says first.
func sshHello(t *testing.T, w *testenv.World) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.NixPort))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("SSH-2.0-stranger\r\n")); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedWithin reports whether serve closes c (EOF or reset) within d,
// reading whatever comes first.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

func wakeAttempts(t *testing.T, k *testenv.Waker) int {
	return strings.Count(k.Output(), "a connection wakes the builder: starting it")
}

// 16.11: a start that fails is not retried for every connection. Before,
// 59 starts in 3 s; now the waits double from 1 s, connections during a
// wait are closed at once, and status says so.
func TestFailedWakeBacksOff(t *testing.T) {
	w, _ := wakeWorld(t, "")
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image = "missing:latest"` + "\n" + `image-flake = "path:/nonexistent-wrapix-flake"` + "\n")
	k := w.Serve()
	deadline := time.Now().Add(4 * time.Second)
	conns := 0
	for time.Now().Before(deadline) {
		starts := wakeAttempts(t, k)
		c := sshHello(t, w)
		t0 := time.Now()
		if !closedWithin(c, 60*time.Second) {
			t.Fatal("a connection to a builder that cannot start was kept open")
		}
		c.Close()
		conns++
		if d := time.Since(t0); starts > 0 && wakeAttempts(t, k) == starts && d > 2*time.Second {
			t.Fatalf("a connection during the backoff waited %s instead of being closed at once", d)
		}
	}
	// 1 s, 2 s, 4 s…: at most 3 starts in 4 s (plus the time the starts take).
	if n := wakeAttempts(t, k); n < 1 || n > 3 || conns < 10 {
		t.Fatalf("%d starts for %d connections in 4 s\n--- serve\n%s", n, conns, k.Output())
	}
	t.Logf("%d starts for %d connections in 4 s", wakeAttempts(t, k), conns)
	if !strings.Contains(k.Output(), "closing a connection from") || !strings.Contains(k.Output(), "not starting the builder again before") {
		t.Fatalf("serve did not log why it closed connections:\n%s", k.Output())
	}
	st := wakerState(t, w)
	if st.LastFailure == nil || st.LastFailure.Attempts < 1 || st.LastFailure.RetryAt == nil {
		t.Fatalf("waker.json does not show the backoff: %+v", st.LastFailure)
	}
	// status (text and JSON) says serve is waiting, while it waits.
	st = wakerState(t, w)
	if time.Now().Before(*st.LastFailure.RetryAt) {
		r := wb(t, "status", "--json")
		var rep struct {
			Waker struct {
				LastFailure struct {
					Attempts int        `json:"attempts"`
					RetryAt  *time.Time `json:"retryAt"`
				} `json:"lastFailure"`
			} `json:"waker"`
			Problem struct{ What string } `json:"problem"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if rep.Waker.LastFailure.Attempts < 1 || rep.Waker.LastFailure.RetryAt == nil {
			t.Fatalf("status --json does not show the backoff:\n%s", r.stdout)
		}
	}
	// A fixed config and a start by the user end the wait: the next build
	// connection goes through at once.
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	mustWB(t, "start")
	waitFor(t, 30*time.Second, func() bool { return wakerState(t, w).Builder == "running" })
	if c := dialPinned(t, w.NixPort); c != nil {
		c.Close()
	}
}

// The text status line names the wait too (a report that is not stale).
func TestFailedWakeBackoffInStatusText(t *testing.T) {
	w, _ := wakeWorld(t, "")
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image = "missing:latest"` + "\n" + `image-flake = "path:/nonexistent-wrapix-flake"` + "\n")
	k := w.Serve("--retry-max", "2m", "--retry-base", "2m")
	c := sshHello(t, w)
	closedWithin(c, 60*time.Second)
	c.Close()
	waitFor(t, 30*time.Second, func() bool { s := wakerState(t, w); return s.LastFailure != nil && s.LastFailure.RetryAt != nil })
	r := wb(t, "status")
	if !strings.Contains(r.stdout, "serve closes build connections for") {
		t.Fatalf("status does not say serve waits:\n%s\n--- serve\n%s", r.stdout, k.Output())
	}
	if r := wb(t, "doctor"); !strings.Contains(r.stdout, "serve closes build connections until") {
		t.Fatalf("doctor does not say serve waits:\n%s", r.stdout)
	}
}

func dialPinned(t *testing.T, port int) *sshclient.Client {
	t.Helper()
	l, err := paths.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(l)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := sshclient.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), sshclient.User, ks.Client.Signer, ks.Host.Public)
	if err != nil {
		t.Fatalf("ssh through port %d: %v", port, err)
	}
	return c
}

// 16.13: connections that never speak SSH (a port scan, a stranger's nc)
// neither start the builder nor keep it awake, and are closed.
func TestSilentConnectionsDoNotWake(t *testing.T) {
	w, _ := wakeWorld(t, `idle-stop = "2s"`+"\n")
	k := w.Serve("--hello-timeout", "3s")
	before := runs(w)
	var silent []net.Conn
	for i := 0; i < 10; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.NixPort))
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	junk, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.NixPort))
	if err != nil {
		t.Fatal(err)
	}
	junk.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	if !closedWithin(junk, 10*time.Second) {
		t.Fatal("a connection that does not speak SSH was kept open")
	}
	for _, c := range silent {
		if !closedWithin(c, 30*time.Second) {
			t.Fatal("a silent connection was kept open past the hello timeout")
		}
		c.Close()
	}
	if n := runs(w) - before; n != 0 {
		t.Fatalf("%d container runs for connections that never spoke SSH\n--- serve\n%s", n, k.Output())
	}
}

// 16.13: with the builder up, connections that stay silent do not hold off
// the idle stop (before, each was carried to sshd and counted as a build's).
func TestSilentConnectionsDoNotKeepAwake(t *testing.T) {
	w, _ := wakeWorld(t, `idle-stop = "2s"`+"\n")
	k := w.Serve("--hello-timeout", "5m")
	mustWB(t, "start")
	waitFor(t, 30*time.Second, func() bool { return wakerState(t, w).Builder == "running" })
	var silent []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.NixPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// A real client's connection through serve arms the idle stop when it ends.
	c := dialPinned(t, w.NixPort)
	c.Close()
	waitFor(t, 60*time.Second, func() bool { return wakerState(t, w).Builder == "stopped" })
	if closedWithin(silent[0], 10*time.Millisecond) {
		t.Fatalf("the silent connections were closed, not ignored\n--- serve\n%s", k.Output())
	}
}

// 16.13: a flood of silent connections does not lock Nix out: past the cap
// the oldest is closed, and a real client still gets through.
func TestSilentFloodLeavesRoomForNix(t *testing.T) {
	w, _ := wakeWorld(t, `idle-stop = "0"`+"\n")
	k := w.Serve()
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.NixPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	c := dialPinned(t, w.NixPort)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.Output(ctx, "echo through"); err != nil || strings.TrimSpace(string(out)) != "through" {
		t.Fatalf("behind 100 silent connections: %q %v\n--- serve\n%s", out, err, k.Output())
	}
}
