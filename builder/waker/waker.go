// Package waker is `wrapix-builder serve`: it owns the address Nix connects
// to, starts the builder when a connection finds it stopped (one start
// however many connections arrive), splices each connection through to the
// container's sshd, and stops the builder once it has been idle for
// idle-stop. With the builder stopped it arms no timer and spawns nothing.
// See docs/on-demand.md.
package waker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/wakestate"
)

// Builder is what the waker needs from the lifecycle.
type Builder interface {
	Start(ctx context.Context) (alreadyRunning bool, err error)
	Stop(ctx context.Context) (wasRunning bool, err error)
	Running(ctx context.Context) (bool, error)
	Busy(ctx context.Context) (busy bool, what string, err error)
}

// Waker is one `serve` process.
type Waker struct {
	Builder  Builder
	Target   string        // the container's sshd: 127.0.0.1:<container-port>
	IdleStop time.Duration // 0 = never stop
	DataDir  string        // waker.json goes here
	LockFile string        // builder.lock: every start and stop writes it
	Log      *log.Logger

	// RetryBase and RetryMax bound the wait after a failed start (zero: 1 s
	// and 1 min): the wait doubles with each failure in a row.
	RetryBase, RetryMax time.Duration
	// HelloTimeout is how long a connection may stay silent before serve
	// closes it (zero: 10 s); MaxSilent is how many silent connections serve
	// holds at once (zero: 64), closing the oldest to make room.
	HelloTimeout time.Duration
	MaxSilent    int

	mu        sync.Mutex
	state     string     // wakestate.Stopped, Starting, Running, Stopping
	op        *operation // the start or stop under way; newcomers wait for it
	conns     int        // connections spliced through now
	waiting   int        // connections waiting for the builder
	idle      *time.Timer
	stopsAt   time.Time
	failure   *wakestate.Failure
	idleStop  *time.Time // when we last stopped the builder for being idle
	listen    string
	since     time.Time
	refreshCh chan struct{}
	saveCh    chan struct{}
	pending   *wakestate.State // the latest state for writeLoop
	user      string

	attempts  int       // failed starts in a row
	retryAt   time.Time // no start before this (backoff after a failure)
	refused   int       // connections closed during this backoff
	silent    map[net.Conn]time.Time
	dropped   int // connections closed for not speaking SSH, since the last log line
	droppedAt time.Time
}

// Defaults for the bounds above.
const (
	defaultRetryBase    = time.Second
	defaultRetryMax     = time.Minute
	defaultHelloTimeout = 10 * time.Second
	defaultMaxSilent    = 64
)

type operation struct {
	start bool
	err   error
	done  chan struct{}
}

// Serve accepts on ln until ctx ends.
func (w *Waker) Serve(ctx context.Context, ln net.Listener) error {
	w.mu.Lock()
	w.state, w.listen, w.since = wakestate.Stopped, ln.Addr().String(), time.Now()
	w.refreshCh, w.saveCh = make(chan struct{}, 1), make(chan struct{}, 1)
	if u, err := user.Current(); err == nil {
		w.user = u.Username
	}
	w.save()
	w.mu.Unlock()
	go w.writeLoop(ctx)
	defer func() {
		w.mu.Lock()
		if w.idle != nil {
			w.idle.Stop()
		}
		w.mu.Unlock()
	}()

	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go w.refreshLoop(ctx)
	w.requestRefresh()
	if err := w.watchLock(ctx); err != nil {
		w.Log.Printf("not watching %s (a start by the CLI or the app will not arm the idle stop until a connection comes): %v", w.LockFile, err)
	}
	var delay time.Duration // after a failed accept
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !acceptRetryable(err) {
				return fmt.Errorf("accept on %s: %w", w.listen, err)
			}
			// Out of file descriptors (or the like): the pending connections
			// wait in the kernel's backlog while open ones finish; a busy loop
			// or an exit would help no one.
			if delay == 0 {
				delay = 5 * time.Millisecond
				w.Log.Printf("accept on %s: %v; retrying", w.listen, err)
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(delay):
			}
			continue
		}
		if delay != 0 {
			w.Log.Printf("accepting on %s again", w.listen)
			delay = 0
		}
		go w.handle(ctx, c)
	}
}

// acceptRetryable: errors after which Accept can work again — a resource
// running out for a while, or a connection that went away before we took it.
func acceptRetryable(err error) bool {
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return true
	}
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// outOfFiles: a dial that failed for want of descriptors says nothing about the builder.
func outOfFiles(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// handle carries one connection to the builder, starting it if needed.
func (w *Waker) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	noDelay(c)
	// An SSH client sends its identification first (OpenSSH since 8.0:
	// kex_exchange_identification in openssh-portable kex.c writes its banner
	// before reading; Go's x/crypto/ssh too). Until it has, the connection
	// neither wakes the builder nor keeps it awake (docs/local-port.md).
	hello, ok := w.hello(c)
	if !ok {
		return
	}
	for attempt := 0; ; attempt++ {
		if err := w.acquire(ctx); err != nil {
			var b *backoffError
			if !errors.As(err, &b) || b.first {
				w.Log.Printf("closing a connection from %s: %v", c.RemoteAddr(), err)
			}
			return
		}
		d := net.Dialer{Timeout: 5 * time.Second}
		up, err := d.DialContext(ctx, "tcp", w.Target)
		if err == nil {
			_, err = up.Write(hello)
		}
		if err != nil && outOfFiles(err) {
			w.release(false)
			w.Log.Printf("closing a connection from %s: %v", c.RemoteAddr(), err)
			return
		}
		if err != nil {
			if up != nil {
				up.Close()
			}
			// The builder went away under us (someone stopped it): check and start it again, once.
			w.release(true)
			if attempt == 0 {
				w.Log.Printf("the builder does not answer on %s (%v); starting it again", w.Target, err)
				continue
			}
			w.Log.Printf("closing a connection from %s: the builder does not answer on %s: %v", c.RemoteAddr(), w.Target, err)
			return
		}
		noDelay(up)
		splice(c, up)
		up.Close()
		w.release(false)
		return
	}
}

// hello waits for the client's first bytes and returns them: "SSH-" as
// every SSH identification begins. A connection that stays silent past
// HelloTimeout, says something else, or is the oldest silent one when
// MaxSilent are waiting is closed; none of them reaches the builder.
func (w *Waker) hello(c net.Conn) ([]byte, bool) {
	timeout, max := w.HelloTimeout, w.MaxSilent
	if timeout <= 0 {
		timeout = defaultHelloTimeout
	}
	if max <= 0 {
		max = defaultMaxSilent
	}
	w.mu.Lock()
	if w.silent == nil {
		w.silent = map[net.Conn]time.Time{}
	}
	if len(w.silent) >= max {
		var oldest net.Conn
		var at time.Time
		for sc, t := range w.silent {
			if oldest == nil || t.Before(at) {
				oldest, at = sc, t
			}
		}
		delete(w.silent, oldest)
		oldest.Close() // its hello fails and counts it as dropped
	}
	w.silent[c] = time.Now()
	w.mu.Unlock()

	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4)
	_, err := io.ReadFull(c, buf)
	_ = c.SetReadDeadline(time.Time{})
	ok := err == nil && string(buf) == "SSH-"

	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.silent, c)
	if !ok {
		// Logged at most once a minute: anyone on the Mac can open these.
		w.dropped++
		if time.Since(w.droppedAt) >= time.Minute {
			w.Log.Printf("closed %d connection(s) that did not speak SSH within %s (they do not wake the builder)", w.dropped, timeout)
			w.dropped, w.droppedAt = 0, time.Now()
		}
	}
	return buf, ok
}

// backoffError is a connection refused while serve waits before another start.
type backoffError struct {
	reason   string
	attempts int
	retryAt  time.Time
	first    bool // the first connection refused in this backoff: the one logged
}

func (e *backoffError) Error() string {
	return fmt.Sprintf("not starting the builder again before %s (%d failed start(s) in a row; the last: %s); `wrapix-builder start` shows it in full",
		e.retryAt.Format(time.TimeOnly), e.attempts, e.reason)
}

// acquire returns once the builder runs, counting the caller as a
// connection; it joins a start or stop under way rather than making another.
func (w *Waker) acquire(ctx context.Context) error {
	w.mu.Lock()
	w.waiting++
	defer func() {
		w.waiting--
		w.mu.Unlock()
	}()
	for {
		if w.state == wakestate.Running && w.op == nil {
			w.conns++
			if w.idle != nil {
				w.idle.Stop()
				w.idle, w.stopsAt = nil, time.Time{}
			}
			if w.conns == 1 {
				w.save()
			}
			return nil
		}
		if w.op == nil && w.state != wakestate.Running && time.Now().Before(w.retryAt) {
			w.refused++
			reason := ""
			if w.failure != nil {
				reason = w.failure.Reason
			}
			return &backoffError{reason: reason, attempts: w.attempts, retryAt: w.retryAt, first: w.refused == 1}
		}
		if w.op == nil {
			if w.refused > 0 {
				w.Log.Printf("closed %d connection(s) while waiting to start the builder again", w.refused)
				w.refused = 0
			}
			w.op = &operation{start: true, done: make(chan struct{})}
			w.state = wakestate.Starting
			w.save()
			go w.start(w.op)
		}
		op := w.op
		w.mu.Unlock()
		select {
		case <-op.done:
		case <-ctx.Done():
			w.mu.Lock()
			return ctx.Err()
		}
		w.mu.Lock()
		if op.start && op.err != nil {
			return op.err
		}
	}
}

func (w *Waker) start(op *operation) {
	t0 := time.Now()
	w.Log.Printf("a connection wakes the builder: starting it")
	// lifecycle.Start has its own deadlines (every container call, start-timeout).
	_, err := w.Builder.Start(context.Background())
	w.mu.Lock()
	defer w.mu.Unlock()
	op.err = err
	if err != nil {
		// Back off: anyone on the Mac can connect, and each connection
		// would otherwise run another start (docs/local-port.md).
		w.attempts++
		wait := w.retryWait(w.attempts)
		now := time.Now()
		w.retryAt = now.Add(wait)
		retry := w.retryAt
		w.state = wakestate.Stopped
		w.failure = &wakestate.Failure{At: now, Reason: oneLine(err), Attempts: w.attempts, RetryAt: &retry}
		w.Log.Printf("a build asked for the builder, but it could not start: %s", w.failure.Reason)
		w.Log.Printf("closing connections until %s, then the next one starts the builder again (%d failed start(s) in a row)", retry.Format(time.TimeOnly), w.attempts)
	} else {
		w.state, w.failure = wakestate.Running, nil
		w.clearBackoff()
		w.Log.Printf("the builder is ready (%s)", time.Since(t0).Round(time.Millisecond))
	}
	w.op = nil
	w.save()
	close(op.done)
}

// retryWait is the wait after n failed starts in a row: RetryBase doubling,
// at most RetryMax.
func (w *Waker) retryWait(n int) time.Duration {
	base, max := w.RetryBase, w.RetryMax
	if base <= 0 {
		base = defaultRetryBase
	}
	if max <= 0 {
		max = defaultRetryMax
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// clearBackoff forgets failed starts: the builder runs (we or someone else
// started it). Called with mu held.
func (w *Waker) clearBackoff() {
	w.attempts, w.retryAt, w.refused = 0, time.Time{}, 0
	if w.failure != nil {
		w.failure.RetryAt = nil
	}
}

// release ends a connection; the last one arms the idle stop. gone means the
// builder did not answer: forget that it runs.
func (w *Waker) release(gone bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.conns--
	if gone && w.conns == 0 && w.op == nil {
		w.state = wakestate.Stopped
	}
	if w.conns == 0 {
		w.armIdle()
		w.save()
	}
}

// armIdle arms the one idle timer; called with mu held.
func (w *Waker) armIdle() {
	if w.IdleStop <= 0 || w.state != wakestate.Running || w.conns > 0 || w.op != nil || w.idle != nil {
		return
	}
	w.stopsAt = time.Now().Add(w.IdleStop)
	w.idle = time.AfterFunc(w.IdleStop, w.idleCheck)
}

// idleCheck runs when the builder has had no connection for idle-stop. It
// asks the builder whether anything still works there (a build started by
// someone connecting directly, a `wrapix-builder ssh` session) and stops it
// only when nothing does and no connection came meanwhile.
func (w *Waker) idleCheck() {
	w.mu.Lock()
	w.idle, w.stopsAt = nil, time.Time{}
	if w.conns > 0 || w.waiting > 0 || w.op != nil || w.state != wakestate.Running {
		w.mu.Unlock()
		return
	}
	op := &operation{done: make(chan struct{})}
	w.op = op
	w.mu.Unlock()

	finish := func(state string) {
		w.mu.Lock()
		w.state, w.op = state, nil
		w.armIdle()
		w.save()
		close(op.done)
		w.mu.Unlock()
	}
	ctx := context.Background()
	busy, what, err := w.Builder.Busy(ctx)
	if err != nil {
		if running, rerr := w.Builder.Running(ctx); rerr == nil && !running {
			w.Log.Printf("the builder was stopped by someone else")
			finish(wakestate.Stopped)
			return
		}
		w.Log.Printf("idle check failed, not stopping (next check in %s): %v", w.IdleStop, err)
		finish(wakestate.Running)
		return
	}
	if busy {
		w.Log.Printf("idle for %s but the builder is at work (%s): not stopping", w.IdleStop, what)
		finish(wakestate.Running)
		return
	}
	w.mu.Lock()
	if w.waiting > 0 {
		w.mu.Unlock()
		finish(wakestate.Running)
		return
	}
	w.state = wakestate.Stopping
	w.save()
	w.mu.Unlock()
	w.Log.Printf("no connection and no build for %s: stopping the builder", w.IdleStop)
	if _, err := w.Builder.Stop(ctx); err != nil {
		w.Log.Printf("idle stop failed: %v", err)
		running, rerr := w.Builder.Running(ctx)
		if rerr != nil || running {
			finish(wakestate.Running)
			return
		}
	}
	now := time.Now()
	w.mu.Lock()
	w.idleStop = &now
	w.mu.Unlock()
	finish(wakestate.Stopped)
}

// watchLock follows writes to builder.lock: a start or stop by the CLI or
// the app (or by us). It costs nothing while nothing happens.
func (w *Waker) watchLock(ctx context.Context) error {
	if w.LockFile == "" {
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	dir := filepath.Dir(w.LockFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fw.Close()
		return err
	}
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return err
	}
	go func() {
		defer fw.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if ev.Name == w.LockFile {
					w.requestRefresh()
				}
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
			}
		}
	}()
	return nil
}

func (w *Waker) requestRefresh() {
	select {
	case w.refreshCh <- struct{}{}:
	default: // one is pending already
	}
}

// refreshLoop re-reads whether the builder runs after someone else may have
// started or stopped it.
func (w *Waker) refreshLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.refreshCh:
		}
		w.mu.Lock()
		busy := w.op != nil
		w.mu.Unlock()
		if busy {
			continue // our own start or stop: it sets the state itself
		}
		running, err := w.Builder.Running(ctx)
		if err != nil {
			continue
		}
		w.mu.Lock()
		switch {
		case w.op != nil:
		case running && w.state != wakestate.Running:
			w.state = wakestate.Running
			w.clearBackoff()
			w.armIdle()
			w.save()
		case !running && w.state == wakestate.Running && w.conns == 0:
			w.state = wakestate.Stopped
			if w.idle != nil {
				w.idle.Stop()
				w.idle, w.stopsAt = nil, time.Time{}
			}
			w.save()
		}
		w.mu.Unlock()
	}
}

// save hands the state to the writer; called with mu held. It never waits
// for the disk: a connection must not wait on a status file.
func (w *Waker) save() {
	s := w.snapshot()
	w.pending = &s
	select {
	case w.saveCh <- struct{}{}:
	default: // the writer will pick up the latest snapshot
	}
}

// writeLoop writes the latest snapshot whenever there is a new one.
func (w *Waker) writeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.saveCh:
		}
		w.mu.Lock()
		s := w.pending
		w.pending = nil
		w.mu.Unlock()
		if s == nil {
			continue
		}
		if err := wakestate.Write(w.DataDir, *s); err != nil {
			w.Log.Printf("cannot write %s: %v", wakestate.Path(w.DataDir), err)
		}
	}
}

func (w *Waker) snapshot() wakestate.State {
	s := wakestate.State{
		PID: os.Getpid(), UID: os.Getuid(), Listen: w.listen, Target: w.Target,
		IdleStopSec: int64(w.IdleStop / time.Second), Builder: w.state, Connections: w.conns,
		Since: w.since, IdleStopAt: w.idleStop,
	}
	if w.failure != nil {
		f := *w.failure // a copy: the writer marshals it outside mu
		s.LastFailure = &f
	}
	s.User = w.user
	if !w.stopsAt.IsZero() {
		t := w.stopsAt
		s.StopsAt = &t
	}
	return s
}

// splice copies both ways until both directions are done, passing each
// half-close on (ssh sends EOF on one side and keeps reading the other).
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, err := io.CopyBuffer(writerOnly{dst}, ackingReader{src, promptAcks(src)}, make([]byte, 256<<10))
		tc, ok := dst.(*net.TCPConn)
		switch {
		case err != nil: // a reset or a dead peer: nothing more will flow either way
			a.Close()
			b.Close()
		case ok:
			_ = tc.CloseWrite()
		default:
			dst.Close()
		}
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	<-done
	<-done
}

// ackingReader acknowledges at once what it reads (see promptAcks); the
// wrappers also keep io.Copy from splice(2), which cannot re-arm it.
type ackingReader struct {
	r   net.Conn
	ack func()
}

func (a ackingReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.ack()
	return n, err
}

type writerOnly struct{ w net.Conn }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

func noDelay(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
}

func oneLine(err error) string {
	msg := err.Error() // a problem.Error carries its "(fix: …)"
	for i, r := range msg {
		if r == '\n' {
			return msg[:i]
		}
	}
	return msg
}

// Listen opens the waker's address; a port held by another program is a
// clear conflict.
func Listen(port int) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, problem.Wrap(problem.Conflict, err, "cannot listen on "+addr,
			fmt.Sprintf("another `wrapix-builder serve` or another program holds it (`lsof -nP -iTCP:%d -sTCP:LISTEN`); stop it or change port in config.toml", port))
	}
	return ln, nil
}
