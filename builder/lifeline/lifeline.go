// Package lifeline ties a command run as root through an administrator
// prompt (osascript's `do shell script … with administrator privileges`,
// pkexec) to the app that asked for it (issue 17 point 8). The app cannot
// signal a root process, and the prompt's own process tree ends at a
// setuid-root helper; so the root command connects to a Unix socket the
// app listens on, and stops when the app closes it: on the app's quit, or
// when the app gave up on the prompt before the command connected. The
// connection is also the app's news that the password was typed: the
// prompt's timeout covers the prompt, not the command.
package lifeline

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Flag is the command's option naming the socket.
const Flag = "--lifeline"

// goAhead is the app's answer to a connection: it still waits for the
// command. A command that connects as the app gives up reads EOF instead.
const goAhead = "go\n"

// Server is the app's side.
type Server struct {
	dir   string
	l     net.Listener
	conns chan net.Conn
}

// Listen opens the socket in a new private directory.
func Listen() (*Server, error) {
	dir, err := os.MkdirTemp("", "wrapix-lifeline-")
	if err != nil {
		return nil, fmt.Errorf("lifeline: %w", err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lifeline: %w", err)
	}
	s := &Server{dir: dir, l: l, conns: make(chan net.Conn, 1)}
	go func() {
		if c, err := l.Accept(); err == nil {
			s.conns <- c
		}
	}()
	return s, nil
}

// Path is the socket, for the command's Flag.
func (s *Server) Path() string { return filepath.Join(s.dir, "sock") }

// Connected delivers the command's connection (once).
func (s *Server) Connected() <-chan net.Conn { return s.conns }

// Accept answers the command's connection: it may go ahead.
func (s *Server) Accept(c net.Conn) error {
	_, err := io.WriteString(c, goAhead)
	return err
}

// StopListening closes the socket; a connection that raced in is returned
// (nil if none), to be accepted or closed by the caller.
func (s *Server) StopListening() net.Conn {
	s.l.Close()
	os.RemoveAll(s.dir)
	select {
	case c := <-s.conns:
		return c
	default:
		return nil
	}
}

// ownSocket: path is a socket owned by uid, in a directory (not a link)
// owned by uid that nobody else may write to.
func ownSocket(path string, uid int) bool {
	if uid < 0 || !filepath.IsAbs(path) {
		return false
	}
	owned := func(fi os.FileInfo) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		return ok && int(st.Uid) == uid
	}
	dir, err := os.Lstat(filepath.Dir(path))
	if err != nil || !dir.IsDir() || !owned(dir) || dir.Mode().Perm()&0o022 != 0 {
		return false
	}
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSocket != 0 && owned(fi)
}

// ErrGone: the app that started the command no longer waits for it.
var ErrGone = errors.New("the app that asked for this no longer waits for it (its prompt timed out or it quit)")

// Hold connects the command to the app's socket at path, which must be a
// socket owned by uid (the user the command acts for) in a directory that
// user owns and nobody else may write to (the app's MkdirTemp), and returns
// a context that ends when the app closes the connection. Root checks this
// before connecting, so it never connects to a socket of someone else, and
// every refusal reads the same: it does not tell whether a path root can
// see exists (issue 16). It returns ErrGone when the app does not answer.
func Hold(ctx context.Context, path string, uid int) (context.Context, error) {
	if !ownSocket(path, uid) {
		return nil, fmt.Errorf("%w (%s is not a socket of uid %d in a directory only that user may write to)", ErrGone, path, uid)
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrGone, err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || line != goAhead {
		c.Close()
		return nil, ErrGone
	}
	_ = c.SetReadDeadline(time.Time{})
	held, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, r) // returns when the app closes its end (or dies)
		cancel()
		c.Close()
	}()
	go func() {
		<-held.Done()
		c.Close()
	}()
	return held, nil
}
