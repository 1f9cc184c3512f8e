package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// openPTY opens a pseudo-terminal pair (Linux's /dev/ptmx).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var n, unlock uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return m, s
}

// Issue 16 review point 6: `logs` passed the builder's bytes raw to the
// terminal (OSC 52 sets the clipboard). On a terminal, escape sequences and
// control characters but newline and tab are dropped; into a pipe the bytes
// pass unchanged.
func TestLogsOnATerminalDropEscapes(t *testing.T) {
	testenv.New(t)
	fake := filepath.Join(t.TempDir(), "container")
	os.WriteFile(fake, []byte(`#!/bin/sh
case "$1" in
--version) echo "container CLI version 1.2.2" ;;
logs) printf 'sshd up\033]52;c;cHduZWQ=\007\r\n\tnext\033[2J line\n'; printf 'err\033]8;;http://x\007link\n' >&2 ;;
esac
`), 0o755)
	master, slave := openPTY(t)
	defer master.Close()
	got := make(chan string, 1)
	go func() {
		data, _ := io.ReadAll(master) // ends with EIO once the slave is closed
		got <- string(data)
	}()
	code := Main([]string{"--container-cli", fake, "logs"}, nil, slave, slave)
	slave.Close()
	out := strings.ReplaceAll(<-got, "\r\n", "\n") // the terminal's own newline translation
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\r") || !strings.Contains(out, "sshd up]52;c;cHduZWQ=\n\tnext[2J line\n") || !strings.Contains(out, "err]8;;http://xlink\n") {
		t.Fatalf("logs on a terminal (exit %d): %q", code, out)
	}
	var stdout bytes.Buffer
	if code := Main([]string{"--container-cli", fake, "logs"}, nil, &stdout, io.Discard); code != 0 || stdout.String() != "sshd up\x1b]52;c;cHduZWQ=\x07\r\n\tnext\x1b[2J line\n" {
		t.Fatalf("logs into a pipe must pass the bytes unchanged (exit %d): %q", code, stdout.String())
	}
}
