package waker

import (
	"net"
	"syscall"
)

// promptAcks re-arms TCP_QUICKACK (linux/tcp.h: 12) on c after every read:
// sshd writes with Nagle's algorithm on, so its next small packet waits for
// our ACK, which Linux otherwise delays by up to 40 ms (as in
// builder/sshclient). macOS has no such option.
func promptAcks(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return func() {}
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return func() {}
	}
	return func() {
		_ = raw.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, 12, 1) })
	}
}
