package waker

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// failingBuilder is a builder whose every start fails, counting the starts.
type failingBuilder struct{ starts atomic.Int64 }

func (f *failingBuilder) Start(context.Context) (bool, error) {
	f.starts.Add(1)
	return false, errors.New("the builder image is not loaded")
}
func (f *failingBuilder) Stop(context.Context) (bool, error)         { return false, nil }
func (f *failingBuilder) Running(context.Context) (bool, error)      { return false, nil }
func (f *failingBuilder) Busy(context.Context) (bool, string, error) { return false, "", nil }

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func serveTest(t *testing.T, w *Waker) (addr string, logs *syncBuf) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs = &syncBuf{}
	w.Log = log.New(logs, "", 0)
	w.DataDir = t.TempDir()
	w.Target = "127.0.0.1:1" // nothing: every start fails before a dial anyway
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String(), logs
}

// closedPromptly sends hello (if any) and reports whether the waker closes the connection within d.
func closedPromptly(t *testing.T, addr, hello string, d time.Duration) bool {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if hello != "" {
		c.Write([]byte(hello))
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// A failed start is not retried for each connection (issue 16.11).
func TestFailedStartBacksOff(t *testing.T) {
	b := &failingBuilder{}
	addr, logs := serveTest(t, &Waker{Builder: b, RetryBase: 400 * time.Millisecond, RetryMax: time.Minute})
	deadline := time.Now().Add(time.Second)
	n := 0
	for time.Now().Before(deadline) {
		if !closedPromptly(t, addr, "SSH-2.0-test\r\n", 10*time.Second) {
			t.Fatal("a connection was kept open while the builder cannot start")
		}
		n++
	}
	// 400 ms, then 800 ms: at most 2 starts in 1 s.
	if s := b.starts.Load(); s < 1 || s > 2 || n < 10 {
		t.Fatalf("%d starts for %d connections in 1 s\n%s", s, n, logs.String())
	}
	if got := strings.Count(logs.String(), "not starting the builder again before"); got > int(b.starts.Load()) {
		t.Fatalf("%d log lines for refused connections (one per wait, not one per connection):\n%s", got, logs.String())
	}
}

func TestRetryWait(t *testing.T) {
	w := &Waker{}
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := w.retryWait(n); got != want {
			t.Errorf("wait after %d failures: %s, want %s", n, got, want)
		}
	}
}

// Connections that do not speak SSH never start the builder (issue 16.13).
func TestSilentConnectionsNeverStart(t *testing.T) {
	b := &failingBuilder{}
	addr, _ := serveTest(t, &Waker{Builder: b, HelloTimeout: 300 * time.Millisecond, MaxSilent: 4})
	if !closedPromptly(t, addr, "", 10*time.Second) {
		t.Fatal("a silent connection was kept past the hello timeout")
	}
	if !closedPromptly(t, addr, "GET / HTTP/1.1\r\n\r\n", 10*time.Second) {
		t.Fatal("a connection that is not SSH was kept")
	}
	if s := b.starts.Load(); s != 0 {
		t.Fatalf("%d starts for connections that never spoke SSH", s)
	}
}

// Past MaxSilent silent connections, the oldest is closed to make room.
func TestSilentConnectionsEvictOldest(t *testing.T) {
	w := &Waker{Builder: &failingBuilder{}, HelloTimeout: time.Minute, MaxSilent: 4}
	addr, _ := serveTest(t, w)
	silent := func() int {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.silent)
	}
	var conns []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
		deadline := time.Now().Add(10 * time.Second)
		for want := min(i+1, 4); silent() != want || (i == 4 && !evicted(conns[0])); {
			if time.Now().After(deadline) {
				t.Fatalf("connection %d: %d silent held, the oldest evicted: %v", i, silent(), evicted(conns[0]))
			}
			time.Sleep(time.Millisecond) // waiting for serve to take the connection
		}
	}
	for _, c := range conns[1:] {
		if evicted(c) {
			t.Fatal("a newer silent connection was closed instead of the oldest")
		}
	}
}

// evicted reports whether serve has closed c (it never sends anything first).
func evicted(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}
