package sshclient

import (
	"net"
	"syscall"
)

// tcpQuickAck is TCP_QUICKACK (linux/tcp.h).
const tcpQuickAck = 12

// promptAcks makes the kernel acknowledge what we receive at once. sshd
// writes non-interactive sessions with Nagle's algorithm on, so its next
// small packet waits for our ACK; Linux's delayed ACK holds that for 40 ms,
// at the first request after authentication and at every handshake round
// trip. The flag does not stick, so it is set again after every read.
func promptAcks(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	q := &quickAckConn{Conn: c, raw: raw}
	q.arm()
	return q
}

type quickAckConn struct {
	net.Conn
	raw syscall.RawConn
}

func (q *quickAckConn) arm() {
	_ = q.raw.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpQuickAck, 1) })
}

func (q *quickAckConn) Read(p []byte) (int, error) {
	n, err := q.Conn.Read(p)
	q.arm()
	return n, err
}
