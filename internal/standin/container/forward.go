//go:build linux

package main

// The published-port forwarder, as container-runtime-linux runs it
// (apple/container RuntimeService.swift startSocketForwarders; the TCP side
// in ConnectHandler.swift): it listens on the host address, accepts every
// connection, and only then connects to the container. When that connect
// fails (nothing listens inside yet, or macOS's Local Network privacy
// refuses the helper: EHOSTUNREACH, apple/container#2067, #2029, #919) the
// accepted connection is reset. So a client sees accept-then-reset, never a
// refusal, while sshd is down or the permission is missing.
//
// Local Network permission: the file local-network-denied in the state
// directory (made at the start by CONTAINER_STANDIN_LOCALNET=denied) stands
// for the missing permission; removing it is the user's click in System
// Settings, and takes effect on the next connection as macOS's does.

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// localNetworkDenied is the file that stands for the missing permission.
func localNetworkDenied(stateDir string) string {
	return filepath.Join(stateDir, "local-network-denied")
}

// freeLoopbackPort picks a port for sshd mode's sshd, which runs on the
// host's network: its "container side" is another loopback port.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startForwarder binds the published port here (so a port in use fails the
// start, as the real bind does) and hands the listener to a forwarder
// process that outlives this invocation, until the container stops.
func (c *cli) startForwarder(ct *container, pub port, backend string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(pub.HostAddress, strconv.Itoa(pub.HostPort)))
	if err != nil {
		return c.errorf("internalError", "failed to bootstrap container %s (cause: \"unknown: \"bind(descriptor:ptr:bytes:): Address already in use (errno: 48)\"\")", ct.ID)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	defer f.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(c.logPath(ct.ID)+".forwarder", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "__forward", backend, localNetworkDenied(c.st.dir))
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	ct.ForwarderPID = cmd.Process.Pid
	cmd.Process.Release()
	return nil
}

// stopForwarder ends the container's forwarder with the container.
func stopForwarder(ct *container) {
	if ct.ForwarderPID > 0 {
		syscall.Kill(ct.ForwarderPID, syscall.SIGKILL)
		ct.ForwarderPID = 0
	}
}

// forward serves the inherited listener (fd 3); it returns only on failure.
func forward(backend, deniedFile string) error {
	ln, err := net.FileListener(os.NewFile(3, "published"))
	if err != nil {
		return err
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go forwardOne(conn.(*net.TCPConn), backend, deniedFile)
	}
}

func forwardOne(conn *net.TCPConn, backend, deniedFile string) {
	reset := func(why string) {
		// ConnectHandler.swift logs each failed backend connect.
		fmt.Fprintf(os.Stderr, "%s connect to %s failed: %s; resetting the client\n", time.Now().Format(time.RFC3339), backend, why)
		conn.SetLinger(0)
		conn.Close()
	}
	if _, err := os.Stat(deniedFile); err == nil {
		reset("No route to host (Local Network permission)")
		return
	}
	back, err := net.DialTimeout("tcp", backend, 2*time.Second)
	if err != nil {
		reset(err.Error())
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src *net.TCPConn) {
		io.Copy(dst, src)
		dst.CloseWrite()
		done <- struct{}{}
	}
	go pipe(back.(*net.TCPConn), conn)
	go pipe(conn, back.(*net.TCPConn))
	<-done
	<-done
	conn.Close()
	back.Close()
}

func init() {
	if len(os.Args) == 4 && os.Args[1] == "__forward" {
		err := forward(os.Args[2], os.Args[3]) // serves until killed with its container
		fmt.Fprintln(os.Stderr, "container stand-in forwarder:", err)
		os.Exit(1)
	}
}
