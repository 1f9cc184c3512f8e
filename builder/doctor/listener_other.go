//go:build !linux

package doctor

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// listenerPID asks lsof (part of macOS) which process listens on the port.
func listenerPID(port int) (int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/usr/sbin/lsof", "-nP", "-t", "-iTCP@127.0.0.1:"+strconv.Itoa(port), "-sTCP:LISTEN").Output()
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	return pid, err == nil
}

// processUID is the real uid of pid (ps, part of macOS).
func processUID(pid int) (int, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "/bin/ps", "-o", "uid=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0, false
	}
	uid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	return uid, err == nil
}
