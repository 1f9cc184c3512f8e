//go:build linux

package main

// End-to-end mode: a running "container" is the image's real entrypoint as
// PID 1 of new mount, pid and uts namespaces, in a fresh root entered with
// pivot_root (not chroot: the Nix sandbox needs user namespaces, which a
// chroot forbids). The network namespace is the host's, so the entrypoint's
// sshd listens directly on the published 127.0.0.1 port. Needs root.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type e2eSpec struct {
	Rootfs   string   `json:"rootfs"`   // the image: entrypoint + nix-image/
	NewRoot  string   `json:"newRoot"`  // where the container's root is assembled
	StoreDir string   `json:"storeDir"` // → /wrapix/store
	KeysDir  string   `json:"keysDir"`  // → /wrapix/keys (read-only)
	Hostname string   `json:"hostname"`
	Env      []string `json:"env"`
}

func (c *cli) startE2E(ct *container) error {
	rootfs := os.Getenv("CONTAINER_STANDIN_ROOTFS")
	if rootfs == "" {
		return c.errorf("invalidState", "stand-in e2e mode needs CONTAINER_STANDIN_ROOTFS (a directory with the image's /entrypoint and /nix-image)")
	}
	if os.Geteuid() != 0 {
		return c.errorf("invalidState", "stand-in e2e mode needs root (namespaces, mounts, pivot_root)")
	}
	spec := e2eSpec{Rootfs: rootfs, NewRoot: filepath.Join(c.st.dir, "run", ct.ID, "root"), Hostname: ct.ID}
	for _, m := range ct.Mounts {
		switch m.Destination {
		case "/wrapix/store":
			spec.StoreDir = m.Source
			if m.Type == "volume" {
				spec.StoreDir = c.st.st.Volumes[m.Volume].Path
			}
		case "/wrapix/keys":
			spec.KeysDir = m.Source
		}
	}
	spec.Env = append([]string{"PATH=/bin:/usr/bin:/usr/sbin:/sbin"}, ct.Env...)
	for _, p := range ct.Ports {
		if p.ContainerPort == 22 {
			spec.Env = append(spec.Env, fmt.Sprintf("WRAPIX_SSHD_LISTEN=%s:%d", p.HostAddress, p.HostPort))
		}
	}
	if v, ok := os.LookupEnv("CONTAINER_STANDIN_GUEST_ENV"); ok { // extra guest settings for tests, e.g. no substituters
		var extra []string
		if err := json.Unmarshal([]byte(v), &extra); err == nil {
			for _, kv := range extra { // an extra setting replaces the one start passed
				name, _, _ := strings.Cut(kv, "=")
				spec.Env = slices.DeleteFunc(spec.Env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
				spec.Env = append(spec.Env, kv)
			}
		}
	}
	if err := os.MkdirAll(spec.NewRoot, 0o755); err != nil {
		return err
	}
	specFile := filepath.Join(c.st.dir, "run", ct.ID, "spec.json")
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(specFile, data, 0o644); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	os.MkdirAll(filepath.Dir(c.logPath(ct.ID)), 0o755)
	logf, err := os.OpenFile(c.logPath(ct.ID), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, "__e2e-init", specFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS,
		Setsid:     true,
	}
	if err := cmd.Start(); err != nil {
		return c.errorf("internalError", "cannot start the container's namespaces: %v", err)
	}
	ct.PID = cmd.Process.Pid
	cmd.Process.Release()
	// Like the real `run -d`: return once the init process runs (a crash at once is a failed start).
	time.Sleep(50 * time.Millisecond)
	if !alive(ct.PID) {
		return c.errorf("internalError", "failed to bootstrap container %s: its init process exited at once (see `container logs %s`)", ct.ID, ct.ID)
	}
	return nil
}

// e2eInit runs inside the new namespaces as PID 1: assemble the root,
// pivot into it, and exec the entrypoint (which stays PID 1).
func e2eInit(specFile string) error {
	data, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var s e2eSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	must := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := must("make mounts private", syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "")); err != nil {
		return err
	}
	r := s.NewRoot
	if err := must("tmpfs root", syscall.Mount("tmpfs", r, "tmpfs", 0, "mode=0755")); err != nil {
		return err
	}
	bind := func(src, dst string, ro, file bool) error {
		dst = filepath.Join(r, dst)
		if file {
			os.MkdirAll(filepath.Dir(dst), 0o755)
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				return err
			}
			f.Close()
		} else if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s → %s: %w", src, dst, err)
		}
		if ro {
			if err := syscall.Mount("", dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_REC, ""); err != nil {
				return fmt.Errorf("read-only %s: %w", dst, err)
			}
		}
		return nil
	}
	// Debian's /usr gives sshd and nix-daemon; the top-level links follow the host's merged-/usr layout.
	if err := bind("/usr", "usr", true, false); err != nil {
		return err
	}
	for _, l := range []string{"lib", "lib32", "lib64", "libx32", "sbin"} {
		if target, err := os.Readlink("/" + l); err == nil {
			os.Symlink(target, filepath.Join(r, l))
		}
	}
	// /bin is a static busybox, as in the image.
	os.MkdirAll(filepath.Join(r, "bin"), 0o755)
	if err := bind("/bin/busybox", "bin/busybox", true, true); err != nil {
		return err
	}
	os.Symlink("busybox", filepath.Join(r, "bin/sh"))
	for _, d := range []string{"tmp", "run", "var", "home", "root", "etc", "nix"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"tmp", "run", "var", "home", "etc"} {
		if err := syscall.Mount("tmpfs", filepath.Join(r, d), "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs /%s: %w", d, err)
		}
	}
	// The image's /etc: the base accounts and name service files.
	for _, f := range []string{"passwd", "group", "shadow", "nsswitch.conf", "hosts", "resolv.conf"} {
		if data, err := os.ReadFile("/etc/" + f); err == nil {
			os.WriteFile(filepath.Join(r, "etc", f), data, 0o644)
		}
	}
	os.Chmod(filepath.Join(r, "etc/shadow"), 0o600)
	if err := bind("/dev", "dev", false, false); err != nil {
		return err
	}
	if err := bind(filepath.Join(s.Rootfs, "nix-image"), "nix-image", true, false); err != nil {
		return err
	}
	if err := bind(filepath.Join(s.Rootfs, "entrypoint"), "entrypoint", true, true); err != nil {
		return err
	}
	if s.StoreDir != "" {
		if err := bind(s.StoreDir, "wrapix/store", false, false); err != nil {
			return err
		}
	}
	if s.KeysDir != "" {
		if err := bind(s.KeysDir, "wrapix/keys", true, false); err != nil {
			return err
		}
	}
	old := filepath.Join(r, ".oldroot")
	os.MkdirAll(old, 0o700)
	if err := must("pivot_root", syscall.PivotRoot(r, old)); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := must("detach old root", syscall.Unmount("/.oldroot", syscall.MNT_DETACH)); err != nil {
		return err
	}
	os.Remove("/.oldroot")
	syscall.Sethostname([]byte(s.Hostname))
	os.MkdirAll("/proc", 0o555)
	if err := must("mount /proc", syscall.Mount("proc", "/proc", "proc", 0, "")); err != nil {
		return err
	}
	if out, err := exec.Command("/bin/busybox", "--install", "-s", "/bin").CombinedOutput(); err != nil {
		return fmt.Errorf("busybox --install: %v %s", err, out)
	}
	return syscall.Exec("/bin/sh", []string{"/bin/sh", "/entrypoint"}, s.Env)
}

func init() {
	if len(os.Args) == 3 && os.Args[1] == "__e2e-init" {
		if err := e2eInit(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "container stand-in e2e init:", err)
			os.Exit(125)
		}
	}
}
