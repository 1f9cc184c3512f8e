package sshclient

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// Interactive runs cmd (or a login shell when cmd is "") with a PTY sized like
// the local terminal, in raw mode, following window resizes, and returns the
// remote exit status.
func (c *Client) Interactive(ctx context.Context, cmd string, in *os.File, out, errw io.Writer) (int, error) {
	fd := int(in.Fd())
	if !term.IsTerminal(fd) {
		return -1, errors.New("standard input is not a terminal")
	}
	sess, err := c.NewSession()
	if err != nil {
		return -1, err
	}
	defer sess.Close()
	w, h, err := term.GetSize(fd)
	if err != nil || w == 0 || h == 0 { // a pty nobody sized yet
		w, h = 80, 24
	}
	termName := os.Getenv("TERM")
	if termName == "" {
		termName = "xterm-256color"
	}
	if err := sess.RequestPty(termName, h, w, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		return -1, err
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return -1, err
	}
	defer term.Restore(fd, old)

	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			if w, h, err := term.GetSize(fd); err == nil {
				_ = sess.WindowChange(h, w)
			}
		}
	}()

	sess.Stdin, sess.Stdout, sess.Stderr = in, out, errw
	if cmd == "" {
		err = sess.Shell()
	} else {
		err = sess.Start(cmd)
	}
	if err != nil {
		return -1, err
	}
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	return exitStatus(sess.Wait())
}
