//go:build linux

package main

// End-to-end mode: a running "container" is the image's real entrypoint as
// PID 1 of new mount, pid and uts namespaces, in a fresh root entered with
// pivot_root (not chroot: the Nix sandbox needs user namespaces, which a
// chroot forbids). As strict as Apple's runtime: the root is the image's
// (image/layout.sh, run by internal/testenv) under a writable overlay, with
// no host /bin, /usr/bin or /sbin; every mount is its own mount at its
// target; the process gets the version's capabilities (all before 0.12, the
// OCI default set plus --cap-add after) and, from 1.2.0, the OCI default
// masked and read-only paths unless both opt-out flags (1.2.1+) clear them.
// The container has its own network namespace too (netns.go): eth0 on the
// state's subnet, a default route via the gateway, and the published port's
// forwarder (forward.go) connecting to the container's address from the
// gateway's side, so the entrypoint finds its address and its one peer as
// it does on a Mac. Needs root.

import (
	"encoding/json"
	"fmt"
	"github.com/wrapix/wrapix-builder/internal/ext4vol"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type e2eSpec struct {
	Rootfs   string     `json:"rootfs"`  // the image's root, laid out by image/layout.sh
	NewRoot  string     `json:"newRoot"` // where the container's root is assembled
	RunDir   string     `json:"runDir"`  // the container's scratch (the writable layer)
	Mounts   []e2eMount `json:"mounts"`  // volumes and host directories, at their targets
	Hostname string     `json:"hostname"`
	Env      []string   `json:"env"`
	// Caps is the capability set of the container's process; nil means all
	// (before 0.12). Masked and ReadOnly are /proc and /sys paths hidden or
	// made read-only (from 1.2.0, unless opted out with NONE from 1.2.1).
	Caps     []string `json:"caps"`
	Masked   []string `json:"masked"`
	ReadOnly []string `json:"readOnly"`
	// NoBlockDevices: /dev holds only the basic character devices, not the
	// volumes' block devices that Apple's devtmpfs shows (the
	// no-block-devices fault: a runtime that would hide them).
	NoBlockDevices bool `json:"noBlockDevices"`
	// Argv is the container's process: the image's entrypoint (/bin/sh
	// /entrypoint) or --entrypoint, then the arguments after the image
	// (Parser.swift processArguments: an --entrypoint drops the image's CMD).
	Argv []string `json:"argv"`
}

type e2eMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// The OCI default capability set: what a container's process gets from
// 0.12 on, plus --cap-add (containerization LinuxProcessConfiguration.swift
// defaultOCICapabilities). Before 0.12 it got every capability.
var ociDefaultCaps = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// The OCI default masked and read-only paths that the runtime applies from
// 1.2.0 (containerization LinuxContainer.swift defaultMaskedPaths /
// defaultReadonlyPaths, applied by vminitd's vmexec RunCommand.swift; kept
// by container's RuntimeService.swift). `--masked-path NONE` and
// `--read-only-path NONE` clear them, from 1.2.1 (Flags.swift, Parser.swift).
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// pathOverrides applies --masked-path / --read-only-path values to the
// defaults as container's Parser.pathOverrides does: NONE clears, others add.
func pathOverrides(defaults, values []string) []string {
	paths := slices.Clone(defaults)
	for _, v := range values {
		v = strings.TrimSpace(v)
		if strings.EqualFold(v, "NONE") {
			paths = nil
			continue
		}
		if !slices.Contains(paths, v) {
			paths = append(paths, v)
		}
	}
	return paths
}

// capabilities is the process's set for this version and the run flags.
func (c *cli) capabilities(ct *container) []string {
	if !c.atLeast(0, 12, 0) {
		return nil
	}
	caps := slices.Clone(ociDefaultCaps)
	for _, a := range ct.CapAdd {
		if n := strings.TrimPrefix(strings.ToUpper(a), "CAP_"); !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	for _, d := range ct.CapDrop {
		n := strings.TrimPrefix(strings.ToUpper(d), "CAP_")
		caps = slices.DeleteFunc(caps, func(c string) bool { return c == n || n == "ALL" })
	}
	return caps
}

func (c *cli) startE2E(ct *container) error {
	rootfs := os.Getenv("CONTAINER_STANDIN_ROOTFS")
	if rootfs == "" {
		return c.errorf("invalidState", "stand-in e2e mode needs CONTAINER_STANDIN_ROOTFS (a directory with the image's /entrypoint and /nix-image)")
	}
	if os.Geteuid() != 0 {
		return c.errorf("invalidState", "stand-in e2e mode needs root (namespaces, mounts, pivot_root)")
	}
	run := filepath.Join(c.st.dir, "run", ct.ID)
	spec := e2eSpec{Rootfs: rootfs, NewRoot: filepath.Join(run, "root"), RunDir: run, Hostname: ct.ID, Caps: c.capabilities(ct)}
	spec.Argv = append([]string{"/bin/sh", "/entrypoint"}, ct.Arguments...)
	if ct.Entrypoint != "" {
		spec.Argv = append([]string{ct.Entrypoint}, ct.Arguments...)
	}
	if c.atLeast(1, 2, 0) {
		spec.Masked = pathOverrides(defaultMaskedPaths, ct.MaskedPaths)
		spec.ReadOnly = pathOverrides(defaultReadonlyPaths, ct.ReadonlyPaths)
	}
	for _, m := range ct.Mounts {
		src := m.Source
		if m.Type == "volume" {
			v := c.st.st.Volumes[m.Volume]
			if err := mountVolume(v); err != nil {
				return c.errorf("internalError", "volume %s: %v", m.Volume, err)
			}
			src = v.Path
		}
		spec.Mounts = append(spec.Mounts, e2eMount{Source: src, Target: m.Destination, ReadOnly: m.ReadOnly})
	}
	spec.Env = append([]string{"PATH=/bin:/usr/bin:/usr/sbin:/sbin"}, ct.Env...)
	var pub *port
	for i, p := range ct.Ports {
		if p.ContainerPort == 22 {
			pub = &ct.Ports[i]
		}
	}
	_, spec.NoBlockDevices = c.faults["no-block-devices"]
	n, err := c.ensureBridge()
	if err != nil {
		return c.errorf("internalError", "failed to bootstrap container %s: its network: %v", ct.ID, err)
	}
	if v, ok := os.LookupEnv("CONTAINER_STANDIN_GUEST_ENV"); ok { // extra guest settings for tests, e.g. no substituters
		var extra []string
		if err := json.Unmarshal([]byte(v), &extra); err == nil {
			for _, kv := range extra { // an extra setting replaces the one start passed
				// {gateway}: where the container reaches the host (a test's server).
				kv = strings.ReplaceAll(kv, "{gateway}", n.gateway())
				name, _, _ := strings.Cut(kv, "=")
				spec.Env = slices.DeleteFunc(spec.Env, func(e string) bool { return strings.HasPrefix(e, name+"=") })
				spec.Env = append(spec.Env, kv)
			}
		}
	}
	if err := os.MkdirAll(spec.NewRoot, 0o755); err != nil {
		return err
	}
	specFile := filepath.Join(run, "spec.json")
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
	// The init process waits on this pipe (its fd 3) until its network is
	// up: the entrypoint reads its address and gateway at once.
	netReady, netGo, err := os.Pipe()
	if err != nil {
		return err
	}
	defer netGo.Close()
	cmd := exec.Command(self, "__e2e-init", specFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{netReady}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
		Setsid:     true,
	}
	err = cmd.Start()
	netReady.Close()
	if err != nil {
		return c.errorf("internalError", "cannot start the container's namespaces: %v", err)
	}
	ct.PID = cmd.Process.Pid
	cmd.Process.Release()
	if err := c.attachNetwork(ct, ct.PID); err != nil {
		c.stopProcess(ct, syscall.SIGKILL, 0)
		return c.errorf("internalError", "failed to bootstrap container %s: its network: %v", ct.ID, err)
	}
	netGo.Write([]byte{1})
	if pub != nil {
		// From the host to the container's address: the gateway's side.
		if err := c.startForwarder(ct, *pub, net.JoinHostPort(ct.IP, strconv.Itoa(pub.ContainerPort))); err != nil {
			c.stopProcess(ct, syscall.SIGKILL, 0)
			return err
		}
	}
	// Like the real `run -d`: return once the init process runs (a crash at once is a failed start).
	time.Sleep(50 * time.Millisecond)
	if !alive(ct.PID) {
		stopForwarder(ct)
		return c.errorf("internalError", "failed to bootstrap container %s: its init process exited at once (see `container logs %s`)", ct.ID, ct.ID)
	}
	return nil
}

// mountVolume makes a named volume its own filesystem, as the real one is
// (an ext4 image without dir_index, journal=ordered from 0.12): its sparse volume.img is
// formatted on first use and loop-mounted on its data directory, on this
// host, until the volume is deleted (the World's cleanup unmounts it too).
// So df inside the container measures the volume, and the host-side tests
// still read the store at the data directory.
func mountVolume(v *volume) error {
	if isMountPoint(v.Path) {
		return nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat(v.Image, &st); err != nil {
		return err
	}
	if st.Blocks == 0 { // never written: no filesystem yet
		// As containerization's EXT4.Formatter makes it: no dir_index, no
		// dir_nlink (a directory then holds at most 64998 subdirectories), no
		// hash seed. A journal only when asked for (journal=…, kept from
		// 0.12 only): the formatter writes none otherwise. inline_data from
		// the CLIs whose containerization set it (before 0.8).
		if err := ext4vol.Format(v.Image, v.Options["journal"] != "", v.InlineData); err != nil {
			return err
		}
	}
	if out, err := exec.Command("mount", "-o", "loop", v.Image, v.Path).CombinedOutput(); err != nil {
		return fmt.Errorf("loop-mount %s: %v %s", v.Image, err, out)
	}
	return nil
}

func unmountVolume(v *volume) {
	if v != nil && isMountPoint(v.Path) {
		syscall.Unmount(v.Path, syscall.MNT_DETACH)
	}
}

// isMountPoint: dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// e2eInit runs inside the new namespaces as PID 1: assemble the root as the
// runtime does (the image's root as a writable layer, the mounts at their
// targets, /proc and /sys with the version's masks), pivot into it, drop to
// the version's capabilities, and exec the entrypoint (which stays PID 1).
// Nothing of the host's /bin, /usr/bin or /sbin is inside: only its shared
// libraries (/usr/lib, /usr/lib64), read-only, which the Debian binaries
// standing in for the aarch64 ones need.
func e2eInit(specFile string) error {
	runtime.LockOSThread() // the capability bounding set is per thread: drop it on the one that execs
	data, err := os.ReadFile(specFile)
	if err != nil {
		return err
	}
	var s e2eSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	if err := assembleRoot(s); err != nil {
		return err
	}
	// Wait for the network (startE2E writes a byte once eth0 is up; EOF: it failed).
	ready := os.NewFile(3, "network-ready")
	if n, _ := ready.Read(make([]byte, 1)); n != 1 {
		return fmt.Errorf("the container's network was not set up")
	}
	ready.Close()
	if err := dropCapabilities(s.Caps); err != nil {
		return err
	}
	argv := s.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh", "/entrypoint"}
	}
	path := argv[0]
	if !strings.Contains(path, "/") { // looked up on the container's PATH, as vminitd does
		for _, dir := range []string{"/bin", "/usr/bin", "/usr/sbin", "/sbin"} {
			if _, err := os.Stat(filepath.Join(dir, path)); err == nil {
				path = filepath.Join(dir, path)
				break
			}
		}
	}
	return syscall.Exec(path, argv, s.Env)
}

func assembleRoot(s e2eSpec) error {
	must := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := must("make mounts private", syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, "")); err != nil {
		return err
	}
	// The writable layer: the image's root under an overlay whose upper
	// directory lives on a tmpfs (a container's changes die with it).
	layer := filepath.Join(s.RunDir, "layer")
	os.MkdirAll(layer, 0o755)
	if err := must("tmpfs layer", syscall.Mount("tmpfs", layer, "tmpfs", 0, "mode=0755")); err != nil {
		return err
	}
	upper, work := filepath.Join(layer, "upper"), filepath.Join(layer, "work")
	os.MkdirAll(upper, 0o755)
	os.MkdirAll(work, 0o755)
	r := s.NewRoot
	if err := must("overlay root", syscall.Mount("overlay", r, "overlay", 0, "lowerdir="+s.Rootfs+",upperdir="+upper+",workdir="+work)); err != nil {
		return err
	}
	bind := func(src, dst string, ro bool) error {
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		dst = filepath.Join(r, dst)
		if fi.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		} else {
			os.MkdirAll(filepath.Dir(dst), 0o755)
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			f.Close()
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
	// The host's shared libraries, read-only (the Debian stand-ins for the
	// image's aarch64 binaries load them): /usr/lib, /usr/lib64, and the
	// multiarch directory at /lib/<triplet> too (Debian's loader link points
	// there); the image's own /lib files stay visible.
	libDirs := map[string]string{"/usr/lib": "/usr/lib", "/usr/lib64": "/usr/lib64"}
	if triplets, _ := filepath.Glob("/usr/lib/*-linux-gnu"); len(triplets) > 0 {
		for _, t := range triplets {
			libDirs[t] = "/lib/" + filepath.Base(t)
		}
	}
	for _, src := range slices.Sorted(maps.Keys(libDirs)) {
		if _, err := os.Stat(src); err == nil {
			if err := bind(src, libDirs[src], true); err != nil {
				return err
			}
		}
	}
	if _, err := os.Lstat(filepath.Join(r, "lib64")); err != nil {
		os.Symlink("usr/lib64", filepath.Join(r, "lib64"))
	}
	// Apple's runtime mounts a devtmpfs at /dev (LinuxContainer.swift):
	// every device of the guest, the volumes' virtio disks too. Here: the
	// host's /dev, where each volume's loop device is; or, with the
	// no-block-devices fault, a tmpfs with the basic character devices only.
	if s.NoBlockDevices {
		os.MkdirAll(filepath.Join(r, "dev"), 0o755)
		if err := must("mount /dev", syscall.Mount("tmpfs", filepath.Join(r, "dev"), "tmpfs", syscall.MS_NOSUID, "mode=755")); err != nil {
			return err
		}
		for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
			if err := bind("/dev/"+d, "dev/"+d, false); err != nil {
				return err
			}
		}
		if err := bind("/dev/pts", "dev/pts", false); err != nil {
			return err
		}
		os.Symlink("pts/ptmx", filepath.Join(r, "dev/ptmx"))
	} else if err := bind("/dev", "dev", false); err != nil {
		return err
	}
	// The runtime writes these into every container.
	for _, f := range []string{"hosts", "resolv.conf"} {
		if data, err := os.ReadFile("/etc/" + f); err == nil {
			os.WriteFile(filepath.Join(r, "etc", f), data, 0o644)
		}
	}
	// Volumes (their own ext4 filesystems, see mountVolume) and host
	// directories at their targets, each its own mount.
	for _, m := range s.Mounts {
		if err := bind(m.Source, m.Target, m.ReadOnly); err != nil {
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
	os.MkdirAll("/sys", 0o555)
	if err := must("mount /sys", syscall.Mount("sysfs", "/sys", "sysfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")); err != nil {
		return err
	}
	return maskPaths(s.Masked, s.ReadOnly)
}

// maskPaths does what vmexec does after pivot_root: /dev/null over masked
// files, a read-only tmpfs over masked directories, read-only binds of the
// read-only paths; missing paths are skipped.
func maskPaths(masked, readOnly []string) error {
	for _, p := range masked {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			err = syscall.Mount("tmpfs", p, "tmpfs", syscall.MS_RDONLY|syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "")
		} else {
			err = syscall.Mount("/dev/null", p, "", syscall.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readOnly {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := syscall.Mount(p, p, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", p, err)
		}
		if err := syscall.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			var st syscall.Statfs_t
			if syscall.Statfs(p, &st) != nil || syscall.Mount("", p, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|uintptr(st.Flags), "") != nil {
				return fmt.Errorf("read-only %s: %w", p, err)
			}
		}
	}
	return nil
}

func init() {
	if len(os.Args) == 3 && os.Args[1] == "__e2e-init" {
		if err := e2eInit(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, "container stand-in e2e init:", err)
			os.Exit(125)
		}
	}
}
