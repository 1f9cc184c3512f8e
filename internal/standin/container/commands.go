//go:build linux

package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var v0 = [3]int{0, 0, 0}

func (c *cli) system(args []string) error {
	if len(args) == 0 {
		return c.usage("system", "Missing expected argument '<subcommand>'")
	}
	switch args[0] {
	case "status":
		flags, _, err := c.parse("system status", args[1:], map[string]flagSpec{"--format": {true, [3]int{0, 10, 0}}, "--prefix": {true, v0}, "-p": {true, v0}}, false)
		if err != nil {
			return err
		}
		running := c.st.st.SystemRunning && !c.fault("apiserver-down", "system")
		// Registered but hung: the 10 s ping times out and the answer is
		// "apiserver is not running", exit 1 (SystemStatus.swift, 0.6.0 … 1.2.2).
		hung := running && c.st.st.APIServerHung
		if hung {
			c.hungPing(10 * time.Second)
			running = false
		}
		if last(flags, "--format") == "json" {
			status := "unregistered"
			switch {
			case running:
				status = "running"
			case hung:
				status = "not running"
			}
			fmt.Printf("{\"apiServerAppName\":\"container-apiserver\",\"apiServerBuild\":\"release\",\"apiServerCommit\":\"af405ff\",\"apiServerVersion\":%q,\"appRoot\":%q,\"installRoot\":\"\\/usr\\/local\",\"status\":%q}\n",
				c.vraw, strings.ReplaceAll(c.appRoot(), "/", "\\/"), status)
		} else if running && !c.atLeast(0, 10, 0) { // free text before 0.10 (SystemStatus.swift)
			fmt.Printf("apiserver is running\napplication data root: %s/\n"+
				"application install root: /usr/local/\ncontainer-apiserver version: container-apiserver version %s (build: release, commit: af405ff)\n"+
				"container-apiserver commit: af405ffd\n", c.appRoot(), c.vraw)
		} else if running {
			fmt.Printf("FIELD              VALUE\nstatus             running\nappRoot            %s/\ninstallRoot        /usr/local/\nlogRoot            \napiserver.version  %s\n", c.appRoot(), c.vraw)
		} else if hung {
			fmt.Println("apiserver is not running")
		} else {
			fmt.Println("apiserver is not running and not registered with launchd")
		}
		if !running {
			return &exitError{1, ""}
		}
		return nil
	case "start":
		flags, _, err := c.parse("system start", args[1:], map[string]flagSpec{"--enable-kernel-install": {false, v0}, "--disable-kernel-install": {false, v0},
			"--timeout": {true, [3]int{0, 10, 0}}, "--app-root": {true, v0}, "-a": {true, v0}, "--install-root": {true, v0}}, false)
		if err != nil {
			return err
		}
		// SystemStart.swift: the apiserver is registered first (launchctl
		// bootstrap, whose failure is ignored: ServiceManager.register), then
		// pinged, and only then is a missing kernel installed. So an
		// interrupted kernel download leaves a running system without one.
		c.st.st.SystemRunning = true
		if err := os.MkdirAll(filepath.Dir(c.kernelPath()), 0o755); err != nil { // KernelService.swift init
			return err
		}
		if c.st.st.APIServerHung {
			timeout := 60 * time.Second // XPCClient.xpcRegistrationTimeout
			if t, err := strconv.ParseFloat(last(flags, "--timeout"), 64); err == nil {
				timeout = time.Duration(t * float64(time.Second))
			}
			c.hungPing(timeout)
			return c.errorf("internalError", "failed to get a response from apiserver: internalError: \"XPC timeout for request to com.apple.container.apiserver/ping\"")
		}
		fmt.Println("Verifying apiserver is running...")
		if !c.kernelInstalled() {
			switch {
			case has(flags, "--enable-kernel-install"):
				delete(c.faults, "kernel-missing")
				return c.downloadKernel()
			case has(flags, "--disable-kernel-install"):
			default:
				fmt.Fprintln(os.Stderr, "No default kernel configured.")
				fmt.Print("Install the recommended default kernel from [" + kernelURL + "]? [Y/n]: ")
				line, err := bufio.NewReader(os.Stdin).ReadString('\n')
				if err != nil && line == "" {
					return c.errorf("internalError", "failed to read user input") // SystemStart.swift: readLine() at EOF
				}
				delete(c.faults, "kernel-missing")
				return c.downloadKernel()
			}
		}
		return nil
	case "kernel":
		return c.kernelCmd(args[1:])
	case "stop":
		// A hung apiserver fails the 5 s ping; SystemStop.swift then boots out
		// every com.apple.container.* service, the apiserver and the
		// containers' runtime helpers with it.
		if c.st.st.APIServerHung {
			c.hungPing(5 * time.Second)
			c.st.st.APIServerHung = false
		}
		for _, ct := range c.st.st.Containers {
			if ct.State == "running" {
				c.stopProcess(ct, syscall.SIGTERM, 5)
			}
		}
		c.st.st.SystemRunning = false
		return nil
	}
	return c.usage("system", fmt.Sprintf("Unexpected argument '%s'", args[0]))
}

func (c *cli) list(args []string) error {
	flags, _, err := c.parse("list", args, map[string]flagSpec{"--all": {false, v0}, "-a": {false, v0}, "--format": {true, v0}, "--quiet": {false, v0}, "-q": {false, v0}}, false)
	if err != nil {
		return err
	}
	all := has(flags, "--all")
	var ids []string
	for _, id := range sortedIDs(c.st.st.Containers) {
		ct := c.st.st.Containers[id]
		// ≤ 0.9 ignored --all in JSON mode and printed everything.
		if all || ct.State == "running" || (last(flags, "--format") == "json" && !c.atLeast(0, 10, 0)) {
			ids = append(ids, id)
		}
	}
	switch {
	case last(flags, "--format") == "json":
		if c.fault("garbage-json", "ls") || c.fault("garbage-json", "list") {
			fmt.Println(`[{"id":"wrapix-builder","status":{"state":`)
			return nil
		}
		fmt.Println(c.renderJSON(ids, false))
	case has(flags, "--quiet"):
		for _, id := range ids {
			fmt.Println(id)
		}
	default:
		fmt.Println("ID  IMAGE  OS  ARCH  STATE  IP  CPUS  MEMORY  STARTED")
		for _, id := range ids {
			ct := c.st.st.Containers[id]
			ip := ""
			if ct.IP != "" {
				ip = ct.IP + "/24"
			}
			fmt.Printf("%s  %s  linux  arm64  %s  %s  %d  %d MB\n", id, ct.Image, ct.State, ip, ct.CPUs, ct.Memory>>20)
		}
	}
	return nil
}

func (c *cli) inspect(args []string) error {
	_, ids, err := c.parse("inspect", args, map[string]flagSpec{}, false)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return c.usage("inspect", "Missing expected argument '<containers> ...'")
	}
	var found, missing []string
	for _, id := range ids {
		if _, ok := c.st.st.Containers[id]; ok {
			found = append(found, id)
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 && c.atLeast(1, 0, 0) {
		return c.errorf("notFound", "container not found: %s", strings.Join(missing, ", "))
	}
	if c.fault("garbage-json", "inspect") {
		fmt.Println("<html>")
		return nil
	}
	fmt.Println(c.renderJSON(found, true))
	return nil
}

var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

func (c *cli) run(args []string) error {
	specs := map[string]flagSpec{
		"--detach": {false, v0}, "-d": {false, v0}, "--name": {true, v0}, "--label": {true, v0}, "-l": {true, v0},
		"--publish": {true, [3]int{0, 3, 0}}, "-p": {true, [3]int{0, 3, 0}}, "--cpus": {true, v0}, "-c": {true, v0},
		"--memory": {true, v0}, "-m": {true, v0}, "--volume": {true, v0}, "-v": {true, v0}, "--mount": {true, v0},
		"--env": {true, v0}, "-e": {true, v0}, "--entrypoint": {true, v0}, "--rm": {false, v0}, "--remove": {false, v0},
		"--cap-add": {true, [3]int{0, 12, 0}}, "--cap-drop": {true, [3]int{0, 12, 0}}, "--progress": {true, [3]int{0, 7, 0}},
		"--init": {false, [3]int{0, 10, 0}}, "--arch": {true, v0}, "--os": {true, v0},
		// From 1.2.1 (Flags.swift); 1.2.0 already applies the defaults they clear.
		"--masked-path": {true, [3]int{1, 2, 1}}, "--read-only-path": {true, [3]int{1, 2, 1}},
		// From 0.7.0 (Flags.swift "Enable Rosetta in the container").
		"--rosetta": {false, [3]int{0, 7, 0}},
	}
	flags, pos, err := c.parse("run", args, specs, true)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return c.usage("run", "Missing expected argument '<image>'")
	}
	id := last(flags, "--name")
	if id == "" {
		id = fmt.Sprintf("%x", time.Now().UnixNano())
	}
	if !nameRe.MatchString(id) || len(id) > 63 {
		return c.errorf("invalidArgument", "container ID %s is not a valid container ID", id)
	}
	if _, exists := c.st.st.Containers[id]; exists || c.fault("name-in-use", "run") {
		return c.errorf("exists", "container with id %s already exists", id)
	}
	image := normalizeRef(pos[0])
	if _, ok := c.st.st.Images[image]; !ok {
		return c.errorf("notFound", "failed to fetch image %s (cause: \"notFound: \"%s not found\"\")", pos[0], pos[0])
	}
	if !c.kernelInstalled() { // Utility.swift getKernel, after the image
		return c.kernelMissing()
	}
	ct := &container{ID: id, Image: image, Labels: map[string]string{}, CPUs: 4, Memory: 1 << 30, Created: time.Now().UTC(), Mode: c.mode,
		Env: flags["--env"], CapAdd: flags["--cap-add"], CapDrop: flags["--cap-drop"], Entrypoint: last(flags, "--entrypoint"), Arguments: pos[1:],
		MaskedPaths: flags["--masked-path"], ReadonlyPaths: flags["--read-only-path"], Rosetta: has(flags, "--rosetta")}
	for _, l := range flags["--label"] {
		k, v, _ := strings.Cut(l, "=")
		ct.Labels[k] = v
	}
	if v := last(flags, "--cpus"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c.usage("run", fmt.Sprintf("The value '%s' is invalid for '--cpus <cpus>'", v))
		}
		ct.CPUs = n
	}
	if v := last(flags, "--memory"); v != "" {
		n, err := parseMemory(v)
		if err != nil {
			return c.errorf("invalidArgument", "%v", err)
		}
		if n < 200<<20 {
			return c.errorf("invalidArgument", "minimum memory amount allowed is 200 MiB (got %d bytes)", n)
		}
		ct.Memory = n
	}
	for _, p := range flags["--publish"] {
		pp, err := parsePublish(p)
		if err != nil {
			return c.errorf("invalidArgument", "%v", err)
		}
		ct.Ports = append(ct.Ports, pp)
	}
	for _, v := range flags["--volume"] {
		m, err := c.parseVolume(v)
		if err != nil {
			return err
		}
		ct.Mounts = append(ct.Mounts, m)
	}
	for _, v := range flags["--mount"] {
		m, err := c.parseMount(v)
		if err != nil {
			return err
		}
		ct.Mounts = append(ct.Mounts, m)
	}
	// No check that another container has the same volume attached: the
	// real CLI throws VolumeError.volumeInUse only from `volume rm`
	// (VolumesService.swift _delete, tags 0.6.0 … 1.2.2), so `run` happily
	// attaches one ext4 image to two VMs. Callers must guard themselves.
	c.st.st.Containers[id] = ct
	if err := c.boot(ct); err != nil {
		// From 0.9 `run` deletes the container it created when the start
		// fails; before, it stays, stopped (ContainerRun.swift).
		if c.atLeast(0, 9, 0) {
			delete(c.st.st.Containers, id)
		} else {
			ct.State = "stopped"
		}
		return err
	}
	fmt.Println(id)
	return nil
}

func (ct *container) usesVolume(name string) bool {
	for _, m := range ct.Mounts {
		if m.Type == "volume" && m.Volume == name {
			return true
		}
	}
	return false
}

// boot starts the container: binds its published ports (record mode checks
// they are free, as the real forwarder would fail) or runs its process.
func (c *cli) boot(ct *container) error {
	for _, m := range ct.Mounts {
		if m.Type == "virtiofs" {
			if _, err := os.Stat(m.Source); err != nil {
				return c.errorf("invalidState", "mount source path '%s' does not exist", m.Source)
			}
		}
	}
	switch ct.Mode {
	case "e2e":
		if err := c.startE2E(ct); err != nil {
			return err
		}
	case "sshd":
		if err := c.startSSHD(ct); err != nil {
			return err
		}
	default:
		for _, p := range ct.Ports {
			ln, err := net.Listen("tcp", net.JoinHostPort(p.HostAddress, strconv.Itoa(p.HostPort)))
			if err != nil {
				return c.errorf("internalError", "failed to bootstrap container %s (cause: \"unknown: \"bind(descriptor:ptr:bytes:): Address already in use (errno: 48)\"\")", ct.ID)
			}
			ln.Close()
		}
	}
	now := time.Now().UTC().Truncate(time.Second)
	ct.State, ct.Started = "running", &now
	if ct.IP == "" { // e2e mode's is real (netns.go); the others' a record
		ct.IP = fmt.Sprintf("192.168.64.%d", c.st.st.NextIP)
		c.st.st.NextIP = c.st.st.NextIP%250 + 2
	}
	return nil
}

func (c *cli) start(args []string) error {
	_, ids, err := c.parse("start", args, map[string]flagSpec{"--attach": {false, v0}, "-a": {false, v0}, "--interactive": {false, v0}, "-i": {false, v0}}, false)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return c.usage("start", "Missing expected argument '<container-id>'")
	}
	ct, ok := c.st.st.Containers[ids[0]]
	if !ok {
		return c.errorf("notFound", "get failed: container %s not found", ids[0])
	}
	if ct.State != "running" {
		if err := c.boot(ct); err != nil {
			return err
		}
	}
	fmt.Println(ct.ID)
	return nil
}

func (c *cli) stop(args []string) error {
	flags, ids, err := c.parse("stop", args, map[string]flagSpec{"--all": {false, v0}, "-a": {false, v0}, "--signal": {true, v0}, "-s": {true, v0}, "--time": {true, v0}, "-t": {true, v0}}, false)
	if err != nil {
		return err
	}
	if has(flags, "--all") {
		ids = sortedIDs(c.st.st.Containers)
	}
	grace := 5
	if v := last(flags, "--time"); v != "" {
		if grace, err = strconv.Atoi(v); err != nil {
			return c.usage("stop", fmt.Sprintf("The value '%s' is invalid for '--time <time>'", v))
		}
	}
	sig := syscall.SIGTERM
	if s := last(flags, "--signal"); s != "" {
		sig = parseSignal(s)
	}
	for _, id := range ids {
		ct, ok := c.st.st.Containers[id]
		if !ok && !c.atLeast(0, 11, 0) {
			continue // ≤ 0.10 stops what the listing has: a missing ID is skipped silently (ContainerStop.swift)
		}
		if !ok {
			return c.aggregate("notFound", "failed to stop container", "container with ID "+id+" not found")
		}
		if ct.State == "running" {
			c.stopProcess(ct, sig, grace)
		}
		fmt.Println(id)
	}
	return nil
}

func (c *cli) kill(args []string) error {
	flags, ids, err := c.parse("kill", args, map[string]flagSpec{"--all": {false, v0}, "-a": {false, v0}, "--signal": {true, v0}, "-s": {true, v0}}, false)
	if err != nil {
		return err
	}
	sig := syscall.SIGKILL
	if s := last(flags, "--signal"); s != "" {
		sig = parseSignal(s)
	}
	for _, id := range ids {
		ct, ok := c.st.st.Containers[id]
		if (!ok || ct.State != "running") && !c.atLeast(0, 10, 0) {
			continue // ≤ 0.9 kills what the listing shows running: others are skipped silently (ContainerKill.swift)
		}
		if !ok {
			return c.aggregate("notFound", "failed to kill container", "container with ID "+id+" not found")
		}
		if ct.State != "running" {
			// 0.10+ asks the server, whose container state has no client once
			// stopped (ContainersService.swift ContainerState.getClient):
			// "sandbox" until 0.12, "runtime" from 1.0.
			what := "runtime"
			if !c.atLeast(1, 0, 0) {
				what = "sandbox"
			}
			return c.aggregate("invalidState", "failed to kill container", "no "+what+" client exists: container is stopped")
		}
		if sig == syscall.SIGKILL || ct.PID == 0 {
			c.stopProcess(ct, syscall.SIGKILL, 0)
		} else {
			syscall.Kill(ct.PID, sig)
		}
		fmt.Println(id)
	}
	return nil
}

func (c *cli) delete(args []string) error {
	flags, ids, err := c.parse("delete", args, map[string]flagSpec{"--all": {false, v0}, "-a": {false, v0}, "--force": {false, v0}, "-f": {false, v0}}, false)
	if err != nil {
		return err
	}
	if !c.atLeast(0, 11, 0) && !has(flags, "--all") {
		// ≤ 0.10 checks the IDs against the listing first (ContainerDelete.swift):
		// ContainerizationError(.notFound, "failed to delete one or more
		// containers: \(missing)"), `missing` a Swift Set printed as ["a", "b"].
		var missing []string
		for _, id := range ids {
			if _, ok := c.st.st.Containers[id]; !ok {
				missing = append(missing, strconv.Quote(id))
			}
		}
		if len(missing) > 0 {
			return c.errorf("notFound", "failed to delete one or more containers: [%s]", strings.Join(missing, ", "))
		}
	}
	for _, id := range ids {
		ct, ok := c.st.st.Containers[id]
		if !ok {
			return c.aggregate("notFound", "failed to delete container", "container with ID "+id+" not found")
		}
		if ct.State == "running" {
			if !has(flags, "--force") {
				switch {
				case !c.atLeast(0, 10, 0): // the task's error is logged, then a summary is thrown
					fmt.Fprintf(os.Stderr, "failed to delete container %s: invalidState: \"container is running\"\n", id)
					return c.errorf("internalError", "delete failed for one or more containers: [%s]", strconv.Quote(id))
				case !c.atLeast(0, 11, 0): // AggregateError of the client-side check
					return &exitError{1, "Error: invalidState: \"container is running\"\n"}
				}
				return c.aggregate("invalidState", "failed to delete container", "container "+id+" is running and can not be deleted")
			}
			c.stopProcess(ct, syscall.SIGKILL, 0) // --force is SIGKILL, not a graceful stop
		}
		delete(c.st.st.Containers, id)
		fmt.Println(id)
	}
	return nil
}

func (c *cli) logs(args []string) error {
	flags, ids, err := c.parse("logs", args, map[string]flagSpec{"--follow": {false, v0}, "-f": {false, v0}, "-n": {true, v0}, "--boot": {false, v0}}, false)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return c.usage("logs", "Missing expected argument '<container>'")
	}
	if _, ok := c.st.st.Containers[ids[0]]; !ok {
		return c.aggregate("notFound", "failed to get logs", "container with ID "+ids[0]+" not found")
	}
	path := c.logPath(ids[0])
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	if n, err := strconv.Atoi(last(flags, "-n")); err == nil && n < len(lines) {
		lines = lines[len(lines)-n-1:]
	}
	fmt.Print(strings.Join(lines, ""))
	if !has(flags, "--follow") {
		return nil
	}
	c.st.unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	f.Seek(int64(len(data)), io.SeekStart)
	for {
		n, _ := io.Copy(os.Stdout, f)
		if n == 0 {
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (c *cli) exec(args []string) error {
	_, pos, err := c.parse("exec", args, map[string]flagSpec{"--interactive": {false, v0}, "-i": {false, v0}, "--tty": {false, v0}, "-t": {false, v0}, "--detach": {false, v0}, "-d": {false, v0}}, true)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return c.usage("exec", "Missing expected argument '<arguments> ...'")
	}
	ct, ok := c.st.st.Containers[pos[0]]
	if !ok {
		return c.errorf("notFound", "get failed: container %s not found", pos[0])
	}
	if ct.State != "running" {
		return c.errorf("invalidState", "container %s is not running", pos[0])
	}
	return c.errorf("unsupported", "exec is not supported by the wrapix test stand-in in %s mode", ct.Mode)
}

func (c *cli) image(args []string) error {
	if len(args) == 0 {
		return c.usage("image", "Missing expected argument '<subcommand>'")
	}
	switch args[0] {
	case "inspect":
		_, refs, err := c.parse("image inspect", args[1:], map[string]flagSpec{}, false)
		if err != nil {
			return err
		}
		var missing []string
		for _, r := range refs {
			if _, ok := c.st.st.Images[normalizeRef(r)]; !ok {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			return c.imageNotFound(missing)
		}
		fmt.Println("[]")
		return nil
	case "load":
		// --force/-f since 0.8 (ImageLoad.swift); the archive on stdin (no --input) since 0.7.
		flags, _, err := c.parse("image load", args[1:], map[string]flagSpec{"--input": {true, v0}, "-i": {true, v0}, "--force": {false, [3]int{0, 8, 0}}, "-f": {false, [3]int{0, 8, 0}}}, false)
		if err != nil {
			return err
		}
		if !has(flags, "--input") && !c.atLeast(0, 7, 0) { // the archive on stdin only since 0.7
			return c.usage("image load", "Missing expected argument '--input <input>'")
		}
		if in := last(flags, "--input"); in != "" {
			if _, err := os.Stat(in); err != nil {
				// ImageLoad.swift: before 1.0 a line on stdout and exit 1
				// with nothing on stderr; from 1.0 a log line on stderr.
				if c.atLeast(1, 0, 0) {
					fmt.Fprintf(os.Stderr, "file does not exist: [\"path\": %s]\n", in)
				} else {
					fmt.Printf("File does not exist %s\n", in)
				}
				return &exitError{1, ""}
			}
		}
		refs, err := c.loadOCI(last(flags, "--input"))
		if err != nil {
			return err
		}
		if !c.atLeast(1, 0, 0) {
			fmt.Println("Loaded images:") // a header line before 1.0 (ImageLoad.swift)
		}
		for _, r := range refs {
			fmt.Println(r)
		}
		return nil
	case "ls", "list":
		// ImageList.swift: sorted by reference; -q the (denormalized)
		// references alone, else a NAME TAG DIGEST table.
		flags, pos, err := c.parse("image list", args[1:], map[string]flagSpec{"--format": {true, v0}, "--quiet": {false, v0}, "-q": {false, v0}, "--verbose": {false, v0}}, false)
		if err != nil {
			return err
		}
		if len(pos) > 0 {
			return c.usage("image list", fmt.Sprintf("Unexpected argument '%s'", pos[0]))
		}
		if has(flags, "--quiet") && has(flags, "--verbose") {
			return c.usage("image list", "cannot use flag --quiet and --verbose together")
		}
		if f := last(flags, "--format"); f != "" && f != "table" {
			return c.errorf("unsupported", "image list --format %s is not supported by the wrapix test stand-in", f)
		}
		refs := slices.Sorted(maps.Keys(c.st.st.Images))
		if has(flags, "--quiet") {
			for _, r := range refs {
				fmt.Println(r)
			}
			return nil
		}
		fmt.Printf("%-40s %-20s %s\n", "NAME", "TAG", "DIGEST")
		for _, r := range refs {
			name, tag := r, "<none>"
			if i := strings.LastIndex(r, ":"); i > strings.LastIndex(r, "/") {
				name, tag = r[:i], r[i+1:]
			}
			fmt.Printf("%-40s %-20s %.12s\n", name, tag, strings.TrimPrefix(c.st.st.Images[r], "sha256:"))
		}
		return nil
	case "delete", "rm":
		return c.imageDelete(args[1:])
	}
	return c.usage("image", fmt.Sprintf("Unexpected argument '%s'", args[0]))
}

// imageDelete is `image delete|rm [-a] <refs…>` (ImageRemove.swift of 0.x,
// ImageDelete.swift of 1.x): each deleted reference printed, then the space
// reclaimed; a missing reference fails the command after the others are
// deleted. -f (ignore missing ones) is in 1.x's ImageDelete.swift and not in
// 0.6's ImageRemove.swift: the stand-in accepts it from 1.0 only.
func (c *cli) imageDelete(args []string) error {
	flags, refs, err := c.parse("image delete", args, map[string]flagSpec{"--all": {false, v0}, "-a": {false, v0},
		"--force": {false, [3]int{1, 0, 0}}, "-f": {false, [3]int{1, 0, 0}}}, false)
	if err != nil {
		return err
	}
	all := has(flags, "--all")
	if len(refs) == 0 && !all {
		return c.usage("image delete", "no images specified and --all not supplied") // validate(): ArgumentParser's exit 64
	}
	if len(refs) > 0 && all {
		return c.usage("image delete", "explicitly supplied images conflict with the --all flag")
	}
	if all {
		refs = slices.Sorted(maps.Keys(c.st.st.Images))
	}
	var failures []string
	deleted := false
	for _, r := range refs {
		n := normalizeRef(r)
		if _, ok := c.st.st.Images[n]; !ok {
			if !has(flags, "--force") {
				failures = append(failures, fmt.Sprintf("%q", r))
			}
			continue
		}
		delete(c.st.st.Images, n)
		fmt.Println(n)
		deleted = true
	}
	if deleted {
		fmt.Println("Reclaimed Zero KB in disk space") // ByteCountFormatter's 0
	}
	if len(failures) > 0 {
		return c.errorf("internalError", "failed to delete one or more images: [%s]", strings.Join(failures, ", "))
	}
	return nil
}

// imageNotFound is `image inspect` of missing references (ImageInspect.swift):
// 0.6–0.8 ContainerizationError(.notFound, "images: …"); 0.9–0.12 a log line
// per image, then InspectError, which is neither LocalizedError nor
// CustomStringConvertible, so ArgumentParser prints its reflection; 1.x
// ContainerizationError(.notFound, "image not found: …").
func (c *cli) imageNotFound(missing []string) *exitError {
	switch {
	case !c.atLeast(0, 9, 0):
		return c.errorf("notFound", "images: %s", strings.Join(missing, "\n"))
	case !c.atLeast(1, 0, 0):
		var b strings.Builder
		var failed []string
		for _, r := range missing {
			switch {
			case !c.atLeast(0, 10, 0): // not yet LocalizedError: Foundation's generic text
				fmt.Fprintf(&b, "%s: The operation couldn’t be completed. (ContainerizationError.ContainerizationError error 1.)\n", r)
			case !c.atLeast(0, 12, 0):
				fmt.Fprintf(&b, "%s: Image not found\n", r)
			default: // swift-log metadata; the key order of a Swift dictionary is not fixed
				fmt.Fprintf(&b, "image inspect failed: [\"name\": %s, \"error\": Image not found]\n", r)
			}
			failed = append(failed, fmt.Sprintf("(%q, notFound: \"Image not found\")", r))
		}
		fmt.Fprintf(&b, "Error: InspectError(succeeded: [], failed: [%s])\n", strings.Join(failed, ", "))
		return &exitError{1, b.String()}
	}
	return c.errorf("notFound", "image not found: %s", strings.Join(missing, ", "))
}

// volumeError is how the apiserver reports a VolumeError over XPC: as
// ContainerizationError(.invalidArgument, localizedDescription)
// (XPCServer.swift), "Volume '…'" capitalised before 0.8 (Volume.swift).
func (c *cli) volumeError(format, name string) *exitError {
	word := "volume"
	if !c.atLeast(0, 8, 0) {
		word = "Volume"
	}
	return c.errorf("invalidArgument", "%s '%s' %s", word, name, format)
}

// loadOCI accepts OCI image-layout tarballs only, like the real CLI.
func (c *cli) loadOCI(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, c.errorf("notFound", "file %s not found", path)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	var layout bool
	var index []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, c.errorf("invalidArgument", "failed to read archive %s: %v", path, err)
		}
		switch strings.TrimPrefix(h.Name, "./") {
		case "oci-layout":
			layout = true
		case "index.json":
			index, _ = io.ReadAll(tr)
		}
	}
	if !layout || index == nil {
		return nil, c.errorf("invalidArgument", "failed to load image: %s/oci-layout not found; only OCI image layouts are supported", path)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(index, &idx); err != nil {
		return nil, c.errorf("invalidArgument", "invalid index.json: %v", err)
	}
	var refs []string
	for _, m := range idx.Manifests {
		ref := ""
		for _, k := range []string{"com.apple.containerization.image.name", "io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			if v := m.Annotations[k]; v != "" {
				ref = v
				break
			}
		}
		if ref == "" {
			ref = "untagged@" + m.Digest
		}
		ref = normalizeRef(ref)
		c.st.st.Images[ref] = m.Digest
		refs = append(refs, ref)
	}
	return refs, nil
}

var volumeNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (c *cli) volumeCmd(args []string) error {
	if len(args) == 0 {
		return c.usage("volume", "Missing expected argument '<subcommand>'")
	}
	switch args[0] {
	case "create":
		// --opt exists since 0.6, but before 0.12 the server reads only
		// "size" and ignores the rest (VolumesService.swift _create): a
		// journal option is accepted and does nothing.
		flags, pos, err := c.parse("volume create", args[1:], map[string]flagSpec{"--opt": {true, v0}, "--label": {true, v0}, "-s": {true, v0}}, false)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return c.usage("volume create", "Missing expected argument '<name>'")
		}
		if _, ok := c.st.st.Volumes[pos[0]]; ok {
			return c.volumeError("already exists", pos[0])
		}
		v, err := c.createVolume(pos[0])
		if err != nil {
			return err
		}
		v.InlineData = !c.atLeast(0, 8, 0)
		for _, o := range flags["--opt"] {
			k, val, _ := strings.Cut(o, "=")
			if k == "journal" && !c.atLeast(0, 12, 0) {
				continue // ignored before 0.12: the volume has no journal
			}
			v.Options[k] = val
		}
		fmt.Println(pos[0])
		return nil
	case "inspect":
		var items []any
		for _, n := range args[1:] {
			v, ok := c.st.st.Volumes[n]
			if !ok {
				if c.atLeast(1, 0, 0) { // 1.x checks the listing client-side (VolumeInspect.swift)
					return c.errorf("notFound", "volume not found: %s", n)
				}
				return c.volumeError("not found", n)
			}
			items = append(items, c.volumeJSON(v))
		}
		if len(items) == 0 {
			return c.usage("volume inspect", "Missing expected argument '<names> ...'")
		}
		out, _ := json.MarshalIndent(items, "", "  ")
		fmt.Println(strings.ReplaceAll(string(out), "/", `\/`)) // Swift's JSONEncoder escapes '/' before 1.4.1
		return nil
	case "rm", "delete":
		for _, n := range args[1:] {
			if _, ok := c.st.st.Volumes[n]; !ok {
				return c.errorf("notFound", "volume not found: %s", n)
			}
			for _, ct := range c.st.st.Containers {
				if ct.usesVolume(n) {
					return c.errorf("invalidState", "volume '%s' is currently in use and cannot be accessed by another container, or deleted", n)
				}
			}
			// The real CLI removes the volume's directory, image and all
			// (VolumesService.swift _delete → removeItem(volumePath)): a
			// volume created later under the same name starts empty.
			v := c.st.st.Volumes[n]
			unmountVolume(v)
			if v.Image != "" {
				if err := os.RemoveAll(filepath.Dir(v.Image)); err != nil {
					return c.errorf("internalError", "storage error: %v", err)
				}
			}
			delete(c.st.st.Volumes, n)
		}
		return nil
	case "ls", "list":
		flags, _, err := c.parse("volume list", args[1:], map[string]flagSpec{"--quiet": {false, v0}, "-q": {false, v0}, "--format": {true, v0}}, false)
		if err != nil {
			return err
		}
		var names []string
		for n := range c.st.st.Volumes {
			names = append(names, n)
		}
		sort.Strings(names)
		switch {
		case has(flags, "--quiet"):
			for _, n := range names {
				fmt.Println(n)
			}
		case last(flags, "--format") == "json":
			var items []any
			for _, n := range names {
				items = append(items, c.volumeJSON(c.st.st.Volumes[n]))
			}
			fmt.Println(jsonLine(items))
		default:
			fmt.Println("NAME  DRIVER  OPTIONS")
			for _, n := range names {
				fmt.Printf("%s  local\n", n)
			}
		}
		return nil
	}
	return c.usage("volume", fmt.Sprintf("Unexpected argument '%s'", args[0]))
}

// volumeJSON is a volume as the imitated version encodes it: 0.x the
// Volume struct (Volume.swift: name, driver, format, source, createdAt,
// labels, options, sizeInBytes), 1.x a VolumeResource {id, configuration}
// whose configuration says creationDate (VolumeResource.swift,
// VolumeConfiguration.swift). source is the volume.img path on the host.
func (c *cli) volumeJSON(v *volume) any {
	created := v.Created
	if created.IsZero() {
		created = time.Unix(0, 0).UTC()
	}
	f := map[string]any{"name": v.Name, "driver": "local", "format": "ext4", "source": v.Image,
		"labels": map[string]string{}, "options": v.Options, "sizeInBytes": int64(512 << 30)}
	if !c.atLeast(1, 0, 0) {
		f["createdAt"] = created.Format(time.RFC3339)
		return f
	}
	f["creationDate"] = created.Format(time.RFC3339)
	return map[string]any{"id": v.Name, "configuration": f}
}

// createVolume makes the volume's backing storage: a directory standing in
// for the ext4 volume.img, and a sparse file at the path the real CLI uses.
func (c *cli) createVolume(name string) (*volume, error) {
	if !volumeNameRe.MatchString(name) {
		return nil, c.errorf("invalidArgument", "invalid volume name %s", name)
	}
	base := filepath.Join(c.st.dir, "volumes", name)
	if err := os.MkdirAll(filepath.Join(base, "data"), 0o755); err != nil {
		return nil, err
	}
	img := filepath.Join(base, "volume.img")
	if f, err := os.OpenFile(img, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
		f.Truncate(512 << 30) // sparse 512 GiB, as the real default
		f.Close()
	}
	v := &volume{Name: name, Options: map[string]string{}, Path: filepath.Join(base, "data"), Image: img, Created: time.Now().UTC().Truncate(time.Second)}
	c.st.st.Volumes[name] = v
	return v, nil
}

func (c *cli) parseVolume(spec string) (mount, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return mount{}, c.errorf("invalidArgument", "invalid volume format %s", spec)
	}
	m := mount{Source: parts[0], Destination: parts[1]}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			if o == "ro" || o == "readonly" {
				m.ReadOnly = true
			}
		}
	}
	if !strings.Contains(m.Source, "/") {
		return c.volumeMount(m)
	}
	if _, err := os.Stat(m.Source); err != nil {
		return mount{}, c.errorf("invalidArgument", "path '%s' does not exist", m.Source)
	}
	m.Type = "virtiofs"
	return m, nil
}

func (c *cli) volumeMount(m mount) (mount, error) {
	v, ok := c.st.st.Volumes[m.Source]
	if !ok { // named volumes are created on demand since 0.6
		var err error
		if v, err = c.createVolume(m.Source); err != nil {
			return mount{}, err
		}
	}
	m.Type, m.Volume, m.Source = "volume", v.Name, v.Image
	return m, nil
}

func (c *cli) parseMount(spec string) (mount, error) {
	var m mount
	typ := ""
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "type":
			typ = v
		case "source", "src":
			m.Source = v
		case "target", "dst", "destination":
			m.Destination = v
		case "readonly", "ro":
			m.ReadOnly = true
		}
	}
	switch typ {
	case "volume":
		return c.volumeMount(m)
	case "bind", "virtiofs":
		fi, err := os.Stat(m.Source)
		if err != nil {
			return mount{}, c.errorf("invalidArgument", "path '%s' does not exist", m.Source)
		}
		if !fi.IsDir() {
			return mount{}, c.errorf("invalidArgument", "path '%s' is not a directory", m.Source)
		}
		m.Type = "virtiofs"
		return m, nil
	}
	return mount{}, c.errorf("invalidArgument", "unsupported mount type %s", typ)
}

var memRe = regexp.MustCompile(`^(?i)(\d+)\s*([kmgtp]?)(i?b)?$`)

// parseMemory follows Measurement+Parse.swift: binary units; a bare number is bytes.
func parseMemory(s string) (int64, error) {
	m := memRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid memory value %s", s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}[strings.ToLower(m[2])]
	return n << shift, nil
}

// parsePublish: [host-ip:]host-port:container-port[/proto]; the default host address is 0.0.0.0.
func parsePublish(s string) (port, error) {
	spec, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	parts := strings.Split(spec, ":")
	p := port{HostAddress: "0.0.0.0", Proto: proto}
	switch len(parts) {
	case 2:
	case 3:
		p.HostAddress = parts[0]
		if net.ParseIP(p.HostAddress) == nil {
			return p, fmt.Errorf("invalid publish IPv4 address: %s", s)
		}
		parts = parts[1:]
	default:
		return p, fmt.Errorf("invalid publish value: %s", s)
	}
	var err1, err2 error
	p.HostPort, err1 = strconv.Atoi(parts[0])
	p.ContainerPort, err2 = strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || p.HostPort <= 1 {
		return p, fmt.Errorf("invalid publish value: %s", s)
	}
	return p, nil
}

func parseSignal(s string) syscall.Signal {
	s = strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n)
	}
	return map[string]syscall.Signal{"TERM": syscall.SIGTERM, "KILL": syscall.SIGKILL, "INT": syscall.SIGINT, "HUP": syscall.SIGHUP, "QUIT": syscall.SIGQUIT}[s]
}

func normalizeRef(ref string) string {
	if !strings.Contains(ref, ":") && !strings.Contains(ref, "@") {
		ref += ":latest"
	}
	return ref
}

func fakeDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func jsonLine(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
