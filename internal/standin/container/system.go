//go:build linux

package main

// The container system service as a fresh Mac meets it: the apiserver is
// registered before the default kernel is downloaded, the download is slow
// and can be interrupted, and an apiserver can be registered but hung.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// kernelURL is 1.2.2's recommended kernel (ContainerSystemConfig.swift);
// 0.6–0.9 used kata 3.17.0 (.tar.xz), 0.10–0.11 3.26.0.
const kernelURL = "https://github.com/kata-containers/kata-containers/releases/download/3.28.0/kata-static-3.28.0-arm64.tar.zst"

// kernelArchiveSize is about the size of the kata tarball (~570 MB).
const kernelArchiveSize = 570 << 20

// appRoot is the apiserver's data root (ApplicationRoot.defaultPath is
// ~/Library/Application Support/com.apple.container); `system status` prints it.
func (c *cli) appRoot() string { return filepath.Join(c.st.dir, "appRoot") }

// kernelPath is where the default kernel is looked up: KernelService.swift
// getDefaultKernel resolves <appRoot>/kernels/default.kernel-<arch> and
// throws notFound when the file is not there (0.6.0 … 1.2.2).
func (c *cli) kernelPath() string {
	return filepath.Join(c.appRoot(), "kernels", "default.kernel-arm64")
}

func (c *cli) kernelInstalled() bool {
	_, err := os.Stat(c.kernelPath())
	return err == nil && !c.fault("kernel-missing", "system")
}

// kernelMissing is what `run` prints without a default kernel
// (ClientKernel.swift getDefaultKernel; the notFound code shows before 0.10).
func (c *cli) kernelMissing() *exitError {
	if !c.atLeast(0, 8, 0) {
		return c.errorf("notFound", "Default kernel not configured for architecture arm64. Please use the `container system kernel set` command to configure it")
	}
	return c.errorf("notFound", "default kernel not configured for architecture arm64, please use the `container system kernel set` command to configure it")
}

// downloadKernel installs the recommended kernel as KernelService.swift
// installKernelFrom does: the tarball is downloaded into a fresh temporary
// directory ($TMPDIR/<uuid>/<name>, written as it arrives: AsyncHTTPClient's
// FileDownloadDelegate, FileDownloader.swift), then unpacked into
// <appRoot>/kernels. It takes CONTAINER_STANDIN_KERNEL_SECONDS (default 3)
// with the state unlocked; killed or interrupted (the fault counter
// CONTAINER_STANDIN_KERNEL_INTERRUPTS), no kernel is left behind. The state
// is saved before and reloaded after: other invocations run meanwhile.
func (c *cli) downloadKernel() error {
	interrupt := c.st.st.KernelInterrupts > 0
	if interrupt {
		c.st.st.KernelInterrupts--
	}
	if err := c.st.save(); err != nil {
		return err
	}
	c.st.unlock()
	defer c.st.relock()
	secs := 3.0
	if s, err := strconv.ParseFloat(os.Getenv("CONTAINER_STANDIN_KERNEL_SECONDS"), 64); err == nil {
		secs = s
	}
	id := make([]byte, 16)
	rand.Read(id)
	tmp := filepath.Join(os.TempDir(), hex.EncodeToString(id))
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	archive := filepath.Join(tmp, filepath.Base(kernelURL))
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	const steps = 50
	for i := 1; i <= steps; i++ {
		time.Sleep(time.Duration(secs * float64(time.Second) / steps))
		f.Truncate(int64(kernelArchiveSize) * int64(i) / steps) // sparse: the size is what grows
		if interrupt && i == steps/2 {
			// A dropped connection surfaces as AsyncHTTPClient's error, printed
			// as its description (FileDownloader.swift downloadFile rethrows).
			return &exitError{1, "Error: HTTPClientError.remoteConnectionClosed\n"}
		}
	}
	if err := os.MkdirAll(filepath.Dir(c.kernelPath()), 0o755); err != nil {
		return err
	}
	return os.WriteFile(c.kernelPath(), []byte("stand-in kernel\n"), 0o644)
}

// kernelCmd is `container system kernel set` (SystemKernel.swift: `set` is
// its only subcommand, 0.6.0 … 1.2.2; --recommended since 0.6.0).
func (c *cli) kernelCmd(args []string) error {
	if len(args) == 0 {
		return c.usage("system kernel", "Missing expected argument '<subcommand>'")
	}
	if args[0] != "set" {
		return c.usage("system kernel", fmt.Sprintf("Unexpected argument '%s'", args[0]))
	}
	flags, _, err := c.parse("system kernel set", args[1:], map[string]flagSpec{"--recommended": {false, v0}, "--force": {false, v0},
		"--arch": {true, v0}, "--binary": {true, v0}, "--tar": {true, v0}}, false)
	if err != nil {
		return err
	}
	if !has(flags, "--recommended") {
		return c.errorf("unsupported", "the wrapix test stand-in installs only the recommended kernel")
	}
	fmt.Fprintf(os.Stderr, "Installing the recommended kernel from %s...\n", kernelURL)
	return c.downloadKernel()
}

// hungPing is what a registered but hung apiserver does to a health check:
// the XPC request times out (XPCClient.swift send(responseTimeout:)).
func (c *cli) hungPing(timeout time.Duration) {
	c.st.unlock()
	time.Sleep(timeout)
	c.st.relock()
}
