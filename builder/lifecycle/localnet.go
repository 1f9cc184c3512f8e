package lifecycle

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// LocalNetworkFix is the click that lets the port forwarder reach the
// container: until it is allowed, macOS refuses container-runtime-linux's
// connections to the container's vmnet address and the forwarder resets
// every connection it accepted (apple/container#2067, #2029, #919; a
// Homebrew install may never show the prompt).
const LocalNetworkFix = "open System Settings → Privacy & Security → Local Network and turn on container-runtime-linux"

// localNetGrace is how long accept-then-reset may go on after the
// entrypoint said sshd runs before it is blamed on the permission: sshd
// listens within milliseconds of that line.
const localNetGrace = 3 * time.Second

// greeting is what one connection to the published port showed.
type greeting int

const (
	noAnswer         greeting = iota // refused, timed out, or something other than SSH
	resetAfterAccept                 // accepted, then closed or reset before a byte: the forwarder found nothing to connect to
	sshGreeted
)

// sshGreeting connects to addr and reads the first bytes.
func sshGreeting(ctx context.Context, addr string) greeting {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		// Accepted and reset before the connect call returned: a refusal
		// would be ECONNREFUSED.
		return resetAfterAccept
	}
	if err != nil {
		return noAnswer
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	n, err := io.ReadFull(conn, buf)
	switch {
	case err == nil && string(buf) == "SSH-":
		return sshGreeted
	case n == 0 && err != nil && !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err):
		return resetAfterAccept
	}
	return noAnswer
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// localNet tells a missing Local Network permission from a builder that is
// still booting: both look like accept-then-reset on the published port,
// but only the first goes on once the entrypoint has said sshd runs.
type localNet struct {
	resetSince time.Time // start of the current run of accept-then-reset answers
	sshdUpAt   time.Time // when the container's log first showed sshd running
	said       bool
}

func (l *localNet) observe(g greeting, now time.Time) {
	switch {
	case g != resetAfterAccept:
		l.resetSince = time.Time{}
	case l.resetSince.IsZero():
		l.resetSince = now
	}
}

// suspect: resets for a while; the container's log decides.
func (l *localNet) suspect(now time.Time) bool {
	return !l.resetSince.IsZero() && now.Sub(l.resetSince) >= localNetGrace
}

// sawLog records the entrypoint's "ready: sshd on …" line among the seen ones.
func (l *localNet) sawLog(seen map[string]bool, now time.Time) {
	if !l.sshdUpAt.IsZero() {
		return
	}
	for msg := range seen {
		if strings.HasPrefix(msg, "ready: sshd on ") {
			l.sshdUpAt = now
		}
	}
}

func (l *localNet) denied(now time.Time) bool {
	return l.suspect(now) && !l.sshdUpAt.IsZero() && now.Sub(l.sshdUpAt) >= localNetGrace
}

func (b *Builder) localNetworkDenied() error {
	return problem.New(problem.Runtime,
		"macOS blocks the container runtime's Local Network access: sshd runs in the builder, but every connection to "+b.SSHAddress()+" is reset",
		LocalNetworkFix+", then run `wrapix-builder start` again")
}
