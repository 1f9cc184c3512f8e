// Package sshclient connects to the builder with the pinned host key: dial
// and handshake bounded by the context, remote commands with their exit
// status, an interactive PTY, and the nix-daemon probe.
package sshclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wrapix/wrapix-builder/builder/nixdaemon"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// User is the account on the builder.
const User = "builder"

// ErrHostKeyMismatch means the server presented another host key than the pinned one.
var ErrHostKeyMismatch = errors.New("the builder presented a different SSH host key than the pinned one")

// Client is an SSH connection to the builder.
type Client struct {
	*ssh.Client
}

// Dial connects to addr as user, authenticating with signer and accepting
// only hostKey. The whole dial and handshake are bounded by ctx.
func Dial(ctx context.Context, addr, user string, signer ssh.Signer, hostKey ssh.PublicKey) (*Client, error) {
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), hostKey.Marshal()) {
				return fmt.Errorf("%w (got %s, want %s)", ErrHostKeyMismatch, ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(hostKey))
			}
			return nil
		},
		HostKeyAlgorithms: []string{hostKey.Type()}, // make the server present the pinned type
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	// ClientConfig.Timeout bounds only the TCP connect; the deadline bounds the handshake too.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(promptAcks(conn), addr, cfg)
	stopped := stop()
	if err != nil {
		conn.Close()
		if !stopped || ctx.Err() != nil {
			return nil, fmt.Errorf("ssh handshake with %s: %w", addr, context.Cause(ctx))
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return &Client{ssh.NewClient(c, chans, reqs)}, nil
}

// Run runs cmd on the builder with the given streams and returns its exit
// status (-1 when the command died of a signal or the connection broke).
// Cancelling ctx closes the session.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	sess, err := c.NewSession()
	if err != nil {
		return -1, fmt.Errorf("open ssh session: %w", err)
	}
	defer sess.Close()
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	return exitStatus(sess.Run(cmd))
}

// OutputMax bounds what Output takes from a command's stdout.
const OutputMax = 64 << 20

// Output runs cmd and returns its stdout (at most OutputMax bytes: more is
// an error); a non-zero exit is an error carrying the start of stderr, on
// one clean line.
func (c *Client) Output(ctx context.Context, cmd string) ([]byte, error) {
	out := &LimitedBuffer{Max: OutputMax}
	errb := &LimitedBuffer{Max: 4 << 10, Truncate: true}
	code, err := c.Run(ctx, cmd, nil, out, errb)
	if out.Over {
		return nil, fmt.Errorf("`%s` on the builder printed more than %d bytes", cmd, OutputMax)
	}
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return out.Bytes(), fmt.Errorf("`%s` on the builder exited %d: %s", cmd, code, errb.Line())
	}
	return out.Bytes(), nil
}

// LimitedBuffer keeps at most Max bytes of what the builder sends. Past
// that it refuses the write (which ends the session), or with Truncate
// drops the rest: the builder cannot grow the Mac's memory.
type LimitedBuffer struct {
	bytes.Buffer
	Max      int
	Truncate bool
	Over     bool // more than Max was sent
}

func (b *LimitedBuffer) Write(p []byte) (int, error) {
	if room := b.Max - b.Len(); len(p) > room {
		b.Over = true
		if !b.Truncate {
			return 0, errors.New("the builder sent more than expected")
		}
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// Line is the text kept, on one line without control characters (for an
// error message), at most 300 characters.
func (b *LimitedBuffer) Line() string {
	return textclean.Line(strings.TrimSpace(b.String()), 300)
}

func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		if ee.Signal() != "" {
			return 128 + signalNumber(ee.Signal()), nil
		}
		return ee.ExitStatus(), nil
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		return -1, errors.New("the connection to the builder ended before the command did")
	}
	return -1, err
}

func signalNumber(name string) int {
	n := map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9, "SEGV": 11, "PIPE": 13, "ALRM": 14, "TERM": 15, "USR1": 10, "USR2": 12}[name]
	if n == 0 {
		return 1
	}
	return n
}

// ObserverMark is a shell prefix that marks the session running the rest of
// the command as one that only watches (our probes, the build-log
// follower): the idle check does not count it as work (lifecycle.Busy).
// The mark is the shell's own PID, which an `exec` keeps, named in the
// builder user's 0700 directory (no build user can forge one) with the
// process's start time (stat field 22), so a mark left behind never names a
// later process with the same PID; the idle check removes stale ones.
const ObserverMark = `mkdir -p -m 700 ~/.wrapix-observers && read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ t _ < /proc/$$/stat && echo "$t" > ~/.wrapix-observers/$$; `

// NixDaemon runs `nix-daemon --stdio` — what Nix's ssh-ng store runs — and
// completes the worker-protocol handshake with it. This proves the daemon
// binary is on the non-interactive PATH and the builder's store answers.
// It is marked an observer: status polls never keep the builder up. (No
// stream-local forward to the daemon's socket: OpenSSH refuses every one
// when TCP forwarding is off — session.c do_authenticated disables the
// admin permissions for FORWARD_LOCAL, which channel_connect_to_path checks
// for paths too.)
func (c *Client) NixDaemon(ctx context.Context) (nixdaemon.Info, error) {
	sess, err := c.NewSession()
	if err != nil {
		return nixdaemon.Info{}, fmt.Errorf("open ssh session: %w", err)
	}
	defer sess.Close()
	stdin, err := sess.StdinPipe()
	if err != nil {
		return nixdaemon.Info{}, err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return nixdaemon.Info{}, err
	}
	stderr := &LimitedBuffer{Max: 4 << 10, Truncate: true}
	sess.Stderr = stderr
	if err := sess.Start(ObserverMark + "exec nix-daemon --stdio"); err != nil {
		return nixdaemon.Info{}, err
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	info, err := nixdaemon.Handshake(struct {
		io.Reader
		io.Writer
	}{c.ackingReader(stdout), stdin})
	if err != nil {
		if ctx.Err() != nil {
			return info, fmt.Errorf("nix-daemon on the builder did not answer in time: %w", ctx.Err())
		}
		if msg := stderr.Line(); msg != "" {
			return info, fmt.Errorf("nix-daemon on the builder: %s", msg)
		}
		return info, err
	}
	return info, nil
}

// KeepAlive sends one OpenSSH keepalive request and waits for the answer.
func (c *Client) KeepAlive(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
}

// ackingReader sends a no-reply keepalive after every read. sshd writes
// non-interactive channels with Nagle's algorithm on, so a second small reply
// packet waits for our delayed TCP ACK (~40 ms on Linux) — twice per
// handshake. Any packet from us carries the ACK at once.
func (c *Client) ackingReader(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		n, err := r.Read(p)
		if n > 0 {
			_, _, _ = c.SendRequest("keepalive@openssh.com", false, nil)
		}
		return n, err
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
