// Package lock serialises lifecycle operations (start, stop, key rotation)
// between processes — the CLI and the app may act at the same moment. It is
// an flock(2) on a file in the data directory: the kernel drops it when the
// holder dies, so a crash never leaves a stale lock.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// Lock is a held lock.
type Lock struct{ f *os.File }

// Acquire takes the lock at path, waiting until ctx ends. waiting is called
// once (with the holder's description) if the lock is busy.
func Acquire(ctx context.Context, path, what string, waiting func(holder string)) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, problem.Wrap(problem.Internal, err, "cannot create "+filepath.Dir(path), "")
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, problem.Wrap(problem.Internal, err, "cannot open lock file "+path, "")
	}
	told := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, problem.Wrap(problem.Internal, err, "cannot lock "+path, "")
		}
		holder := readHolder(path)
		if !told && waiting != nil {
			waiting(holder)
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, problem.Newf(problem.Conflict, "wait for it to finish, or stop that process",
				"another wrapix-builder operation is in progress (%s)", holder)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Describe the holder for whoever waits; the content is informational only.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("%d %s\n", os.Getpid(), what)), 0)
	return &Lock{f: f}, nil
}

// Holder reports the operation under way (e.g. "start") and its pid, if
// a live process holds the lock at path. It only reads what the holder
// wrote (flocking to look would make a concurrent Acquire wait): Release
// empties the file, and a holder killed with -9 leaves a dead pid.
func Holder(path string) (what string, pid int, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, false
	}
	p, what, found := strings.Cut(strings.TrimSpace(string(data)), " ")
	pid, err = strconv.Atoi(p)
	if !found || err != nil || pid <= 0 {
		return "", 0, false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return "", 0, false
	}
	return what, pid, true
}

func readHolder(path string) string {
	data, _ := os.ReadFile(path)
	pid, what, ok := strings.Cut(strings.TrimSpace(string(data)), " ")
	if _, err := strconv.Atoi(pid); !ok || err != nil {
		return "unknown process"
	}
	return fmt.Sprintf("%s, pid %s", what, pid)
}

// Release drops the lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0)
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	l.f.Close()
	l.f = nil
}
