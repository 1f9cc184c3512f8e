//go:build linux

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func (c *cli) logPath(id string) string { return filepath.Join(c.st.dir, "logs", id+".log") }

// alive reports whether pid runs and is not a zombie: the stand-in exits
// after `run`, so the container process is re-parented and reaped late.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i > 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// refresh notices containers whose process died (killed from outside).
func (c *cli) refresh() {
	for _, ct := range c.st.st.Containers {
		if ct.State == "running" && ct.PID > 0 && !alive(ct.PID) {
			stopForwarder(ct)
			c.detachNetwork(ct)
			ct.State, ct.IP, ct.PID = "stopped", "", 0
		}
	}
}

// descendants lists pid's children, grandchildren, … from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, st := range stats {
		data, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(st)))
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, ch := range children[p] {
			out = append(out, ch)
			queue = append(queue, ch)
		}
	}
	return out
}

// stopProcess sends sig, waits up to grace seconds, then SIGKILL. A KILL
// takes every process of the container down, as a VM's death does (in sshd
// mode the per-connection sshd processes would otherwise outlive it).
func (c *cli) stopProcess(ct *container, sig syscall.Signal, grace int) {
	if ct.PID > 0 && sig == syscall.SIGKILL {
		for _, p := range descendants(ct.PID) {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	if ct.PID > 0 {
		syscall.Kill(ct.PID, sig)
		deadline := time.Now().Add(time.Duration(grace) * time.Second)
		for alive(ct.PID) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(ct.PID) {
			for _, p := range descendants(ct.PID) {
				syscall.Kill(p, syscall.SIGKILL)
			}
			syscall.Kill(ct.PID, syscall.SIGKILL)
			for i := 0; i < 100 && alive(ct.PID); i++ {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	stopForwarder(ct)
	c.detachNetwork(ct)
	ct.State, ct.IP, ct.PID = "stopped", "", 0
}

// startSSHD runs a real OpenSSH sshd as the "container": it serves the
// guest key mount (host key + authorized_keys) on the published port, as the
// builder user. No namespaces: this mode tests the host side of the chain.
func (c *cli) startSSHD(ct *container) error {
	var keysDir, storeDir string
	for _, m := range ct.Mounts {
		switch m.Destination {
		case "/wrapix/keys":
			keysDir = m.Source
		case "/nix", "/wrapix/store":
			storeDir = m.Source
			if m.Type == "volume" {
				storeDir = c.st.st.Volumes[m.Volume].Path
			}
		}
	}
	if keysDir == "" {
		return c.errorf("invalidArgument", "stand-in sshd mode needs the guest key mount at /wrapix/keys")
	}
	var pub *port
	for i := range ct.Ports {
		if ct.Ports[i].ContainerPort == 22 {
			pub = &ct.Ports[i]
		}
	}
	if pub == nil {
		return c.errorf("invalidArgument", "stand-in sshd mode needs port 22 published")
	}
	run := filepath.Join(c.st.dir, "run", ct.ID)
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	// sshd insists on a private host key owned by root (or its user): copy it.
	hostKey := filepath.Join(run, "ssh_host_ed25519_key")
	data, err := os.ReadFile(filepath.Join(keysDir, "ssh_host_ed25519_key"))
	if err != nil {
		return c.errorf("invalidArgument", "guest key mount: %v", err)
	}
	if err := os.WriteFile(hostKey, data, 0o600); err != nil {
		return err
	}
	os.Chmod(hostKey, 0o600)
	auth := filepath.Join(run, "authorized_keys")
	data, err = os.ReadFile(filepath.Join(keysDir, "authorized_keys"))
	if err != nil {
		return c.errorf("invalidArgument", "guest key mount: %v", err)
	}
	if err := os.WriteFile(auth, data, 0o644); err != nil {
		return err
	}
	os.Chmod(auth, 0o644)
	os.Chmod(run, 0o755)
	// sshd reads authorized_keys, and the builder user's nix-daemon its
	// store, with the builder's own rights: let it traverse down to them.
	traversable(run)
	if storeDir != "" {
		traversable(storeDir)
	}
	userName := "builder"
	u, err := user.Lookup(userName)
	if err != nil {
		return c.errorf("invalidState", "stand-in sshd mode needs a local user %q (useradd -m builder)", userName)
	}
	// The store mount becomes the builder user's own Nix store (a chroot
	// store), so `nix-daemon --stdio` serves a real store without touching
	// the host's /nix.
	storeEnv := ""
	if storeDir != "" {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(storeDir, uid, gid)
		storeEnv = "SetEnv NIX_REMOTE=local?root=" + storeDir + " \"NIX_CONFIG=substituters =\""
	}
	// sshd is the container's: it listens on the "container side" (a
	// loopback port of its own), reached through the forwarder.
	backendPort, err := freeLoopbackPort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(run, "sshd_config")
	conf := strings.Join([]string{
		"Port " + strconv.Itoa(backendPort),
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + auth,
		"AllowUsers " + userName,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin no",
		"UsePAM no",
		"StrictModes no",
		"PidFile none",
		"LogLevel INFO",
		storeEnv,
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return err
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/sshd"); err2 == nil {
			sshd = "/usr/sbin/sshd"
		} else {
			return c.errorf("invalidState", "stand-in sshd mode needs OpenSSH's sshd")
		}
	}
	os.MkdirAll(filepath.Dir(c.logPath(ct.ID)), 0o755)
	logf, err := os.OpenFile(c.logPath(ct.ID), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	ct.PID = cmd.Process.Pid
	cmd.Process.Release()
	if err := c.startForwarder(ct, *pub, net.JoinHostPort("127.0.0.1", strconv.Itoa(backendPort))); err != nil {
		c.stopProcess(ct, syscall.SIGKILL, 0)
		return err
	}
	// Wait for the listener, as the real CLI returns after the init process started.
	for i := 0; i < 200; i++ {
		if !alive(ct.PID) {
			c.stopProcess(ct, syscall.SIGKILL, 0)
			return c.errorf("internalError", "failed to bootstrap container %s: sshd exited at once (see `container logs %s`)", ct.ID, ct.ID)
		}
		if listening("127.0.0.1", backendPort) {
			// This mode stands in for the image too: its entrypoint's line
			// once sshd runs (image/entrypoint.sh, "ready: sshd on …").
			if f, err := os.OpenFile(c.logPath(ct.ID), os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(f, "wrapix-builder: ready: sshd on 127.0.0.1:%d\n", backendPort)
				f.Close()
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func listening(host string, p int) bool {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(p)), 100*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// traversable adds o+x to dir and its parents (test temp dirs are 0700).
func traversable(dir string) {
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o001)
		}
	}
}
