package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// 16.12: serve out of file descriptors keeps serving: Accept's EMFILE is
// waited out, and the next connection works.
func TestServeSurvivesEMFILE(t *testing.T) {
	w, _ := wakeWorld(t, `idle-stop = "0"`+"\n")
	k := w.Serve()
	mustWB(t, "start")
	waitFor(t, 30*time.Second, func() bool { return wakerState(t, w).Builder == "running" })
	pid := k.Cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	limit := uint64(len(fds) + 4)
	// The soft limit only (raising a hard limit back needs a privilege):
	// Go raises the soft limit to the hard one only when a program starts.
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: limit, Max: old.Max}, nil); err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	for i := 0; i < 40; i++ {
		held = append(held, sshHello(t, w))
	}
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(k.Output(), "too many open files") })
	for _, c := range held {
		c.Close()
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	c := dialPinned(t, w.NixPort)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := c.Output(ctx, "echo after-emfile"); err != nil || strings.TrimSpace(string(out)) != "after-emfile" {
		t.Fatalf("after EMFILE: %q %v\n--- serve\n%s", out, err, k.Output())
	}
	if k.Cmd.ProcessState != nil || !processAlive(pid) {
		t.Fatalf("serve exited:\n%s", k.Output())
	}
}

func processAlive(pid int) bool { return unix.Kill(pid, 0) == nil }
