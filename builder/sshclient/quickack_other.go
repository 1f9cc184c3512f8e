//go:build !linux

package sshclient

import "net"

// promptAcks: macOS has no TCP_QUICKACK; the ACKs go as the kernel decides.
func promptAcks(c net.Conn) net.Conn { return c }
