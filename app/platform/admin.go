package platform

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/builder/lifeline"
)

// runAdmin runs argv as root through a prompt (prompt(argv) is osascript or
// pkexec) and owns what it started (issue 17 point 8). The prompt runs in
// its own process group, killed on timeout and on ctx's end (the app
// quits). The root command, out of our reach for signals, holds a lifeline
// (argv gets lifeline.Flag): its connection says the password was typed —
// from then on AdminTimeout no longer applies — and closing it stops the
// command. classify turns the prompt's exit into ErrCancelled or an error.
func runAdmin(ctx context.Context, argv []string, prompt func(argv []string) *exec.Cmd, classify func(err error, output string) error) error {
	ll, err := lifeline.Listen()
	if err != nil {
		return err
	}
	cmd := prompt(append(append([]string{}, argv...), lifeline.Flag, ll.Path()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second // a root grandchild may hold our pipe
	if err := cmd.Start(); err != nil {
		ll.StopListening()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	killGroup := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	timer := time.NewTimer(AdminTimeout)
	defer timer.Stop()

	var conn interface{ Close() error }
	select {
	case c := <-ll.Connected():
		ll.StopListening()
		if err := ll.Accept(c); err == nil {
			conn = c
		}
	case err := <-exited:
		if c := ll.StopListening(); c != nil {
			c.Close()
		}
		return classify(err, out.String())
	case <-timer.C:
		// A command connecting now finds nobody: it stops with nothing done.
		if c := ll.StopListening(); c != nil {
			c.Close()
		}
		killGroup()
		<-exited
		return adminTimedOut()
	case <-ctx.Done():
		if c := ll.StopListening(); c != nil {
			c.Close()
		}
		killGroup()
		<-exited
		return ctx.Err()
	}
	if conn != nil {
		defer conn.Close()
	}
	select {
	case err := <-exited:
		return classify(err, out.String())
	case <-ctx.Done():
		if conn != nil {
			conn.Close() // the root command stops itself (setup saves its journal before every write)
		}
		killGroup()
		select {
		case <-exited:
		case <-time.After(30 * time.Second): // the root command's own end; not ours to wait longer
		}
		return ctx.Err()
	}
}

// exitCode is a finished command's exit status (-1 if it did not exit).
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}
