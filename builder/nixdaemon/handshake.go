// Package nixdaemon speaks just enough of the Nix worker protocol to prove a
// nix-daemon answers: the opening handshake that every client (and Nix's
// ssh-ng store) performs, ending at the daemon's first STDERR_LAST.
package nixdaemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/wrapix/wrapix-builder/builder/textclean"
)

const (
	workerMagic1 = 0x6e697863 // "nixc", client → daemon
	workerMagic2 = 0x6478696f // "dxio", daemon → client
	stderrLast   = 0x616c7473
	stderrError  = 0x63787470
	stderrNext   = 0x6f6c6d67
	// clientVersion is 1.35: late enough to be told the daemon's Nix version
	// (1.33) and whether we are trusted (1.35), early enough to skip the
	// feature negotiation of 1.38.
	clientVersion = 1<<8 | 35
)

// Info is what the handshake tells.
type Info struct {
	Protocol string // negotiated daemon protocol, e.g. "1.34"
	Version  string // the daemon's Nix version, when protocol ≥ 1.33
	Trusted  string // "trusted", "not trusted" or "" (unknown, protocol < 1.35)
}

// Handshake runs the worker-protocol handshake over rw (a daemon socket, or
// the stdio of `nix-daemon --stdio` over SSH). The client's whole part is
// sent in one write (hello, version, no CPU affinity, no reserved space):
// every round trip over SSH counts. That assumes a daemon speaking protocol
// ≥ 1.14 (Nix ≥ 1.8); older ones are refused.
func Handshake(rw io.ReadWriter) (Info, error) {
	var info Info
	hello := make([]byte, 0, 32)
	for _, v := range []uint64{workerMagic1, clientVersion, 0, 0} {
		hello = binary.LittleEndian.AppendUint64(hello, v)
	}
	if _, err := rw.Write(hello); err != nil {
		return info, fmt.Errorf("sending hello: %w", err)
	}
	magic, err := readU64(rw)
	if err != nil {
		return info, fmt.Errorf("no answer from nix-daemon: %w", err)
	}
	if magic != workerMagic2 {
		return info, fmt.Errorf("not a nix-daemon (bad magic %#x)", magic)
	}
	daemonVersion, err := readU64(rw)
	if err != nil {
		return info, err
	}
	if daemonVersion>>8 != 1 || daemonVersion&0xff < 14 {
		return info, fmt.Errorf("unsupported nix-daemon protocol %d.%d (need 1.14 or newer)", daemonVersion>>8, daemonVersion&0xff)
	}
	minor := min(daemonVersion&0xff, clientVersion&0xff)
	info.Protocol = fmt.Sprintf("1.%d", daemonVersion&0xff)
	if minor >= 33 {
		if info.Version, err = readString(rw); err != nil {
			return info, err
		}
		// Shown in status and the menu: the daemon is the builder's, untrusted.
		info.Version = textclean.Line(info.Version, 100)
	}
	if minor >= 35 {
		t, err := readU64(rw)
		if err != nil {
			return info, err
		}
		info.Trusted = map[uint64]string{1: "trusted", 2: "not trusted"}[t]
	}
	for { // the daemon ends the handshake's work phase with STDERR_LAST
		msg, err := readU64(rw)
		if err != nil {
			return info, fmt.Errorf("nix-daemon closed the connection during the handshake: %w", err)
		}
		switch msg {
		case stderrLast:
			return info, nil
		case stderrNext:
			if _, err := readString(rw); err != nil {
				return info, err
			}
		case stderrError:
			return info, errors.New("nix-daemon reported an error during the handshake")
		default:
			return info, fmt.Errorf("unexpected nix-daemon message %#x", msg)
		}
	}
}

func readU64(r io.Reader) (uint64, error) {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func readString(r io.Reader) (string, error) {
	n, err := readU64(r)
	if err != nil {
		return "", err
	}
	if n > 1<<16 {
		return "", fmt.Errorf("nix-daemon sent an oversized string (%d bytes)", n)
	}
	buf := make([]byte, (n+7)&^7) // strings are padded to 8 bytes
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
