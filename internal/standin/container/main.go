//go:build linux

// Command container is a TEST STAND-IN for Apple's `container` CLI, which
// cannot run on Linux. It is never shipped. It answers the subset that
// wrapix-builder uses exactly as docs/../shared/reference/apple-container.md
// says the real CLI does: flags (gated by version, exit 64 when unknown),
// 1.x JSON by default and 0.x JSON for older versions, error texts and exit
// codes. State lives in $CONTAINER_STANDIN_STATE.
//
// Environment:
//
//	CONTAINER_STANDIN_STATE    state directory (required)
//	CONTAINER_STANDIN_VERSION  CLI version to imitate (default 1.2.2)
//	CONTAINER_STANDIN_MODE     record (default): containers are records only;
//	                           sshd: a running container is a real sshd serving
//	                           the guest key mount on the published port
//	CONTAINER_STANDIN_FAULTS   comma list of FAULT or FAULT:SUBCOMMAND, faults being
//	                           hang, garbage-json, apiserver-down, name-in-use,
//	                           kernel-missing, no-block-devices (e2e: the
//	                           container's /dev lacks the volumes' disks)
//	CONTAINER_STANDIN_SYSTEM   "stopped": the system service starts stopped;
//	                           "hung": registered with launchd but not answering
//	CONTAINER_STANDIN_KERNEL   "missing": no default kernel installed yet
//	CONTAINER_STANDIN_KERNEL_SECONDS     how long a kernel download takes (default 3)
//	CONTAINER_STANDIN_KERNEL_INTERRUPTS  how many kernel downloads break off halfway
//	CONTAINER_STANDIN_IMAGES   comma list of image references present from the start
//	CONTAINER_STANDIN_GUEST_ENV  e2e: JSON list of extra NAME=value for the container's
//	                           process; {gateway} in a value is the container's gateway
//	                           (where it reaches the host, e.g. a test's server)
package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

type cli struct {
	args    []string // the full argv after the program name
	version [3]int
	vraw    string
	st      *store
	faults  map[string]string // fault → subcommand ("" = any)
	mode    string
}

type exitError struct {
	code int
	msg  string // printed to stderr as is
}

func (e *exitError) Error() string { return e.msg }

func main() {
	c := &cli{args: os.Args[1:], faults: map[string]string{}, mode: os.Getenv("CONTAINER_STANDIN_MODE")}
	if c.mode == "" {
		c.mode = "record"
	}
	c.vraw = os.Getenv("CONTAINER_STANDIN_VERSION")
	if c.vraw == "" {
		c.vraw = "1.2.2"
	}
	fmt.Sscanf(c.vraw, "%d.%d.%d", &c.version[0], &c.version[1], &c.version[2])
	for _, f := range strings.Split(os.Getenv("CONTAINER_STANDIN_FAULTS"), ",") {
		if f = strings.TrimSpace(f); f != "" {
			name, sub, _ := strings.Cut(f, ":")
			c.faults[name] = sub
		}
	}
	code := c.main()
	os.Exit(code)
}

func (c *cli) atLeast(maj, min, patch int) bool {
	v := c.version
	if v[0] != maj {
		return v[0] > maj
	}
	if v[1] != min {
		return v[1] > min
	}
	return v[2] >= patch
}

func (c *cli) fault(name, sub string) bool {
	s, ok := c.faults[name]
	return ok && (s == "" || s == sub)
}

// errorf prints an error the way the real CLI's version does: from 0.10 the
// LocalizedError message, before it `code: "message"`.
func (c *cli) errorf(code, format string, args ...any) *exitError {
	msg := fmt.Sprintf(format, args...)
	if c.atLeast(0, 10, 0) {
		return &exitError{1, "Error: " + msg + "\n"}
	}
	return &exitError{1, fmt.Sprintf("Error: %s: \"%s\"\n", code, msg)} // nested quotes are not escaped
}

// aggregate is how stop/delete/kill print (AggregateError: code: "message").
func (c *cli) aggregate(code, outer, msg string) *exitError {
	return &exitError{1, fmt.Sprintf("Error: internalError: \"%s\" (cause: \"%s: \"%s\"\")\n", outer, code, msg)}
}

// xpcDown: Application.swift wraps any error mentioning "XPC connection
// error" as ContainerizationError(.interrupted, "<description>\nEnsure …"),
// which before 0.10 prints with its code like every other error.
func (c *cli) xpcDown() *exitError {
	inner := "internalError: \"failed to list containers\" (cause: \"interrupted: \"XPC connection error: Connection invalid\"\")"
	return c.errorf("interrupted", "%s\nEnsure container system service has been started with `container system start`.", inner)
}

func (c *cli) log() {
	f, err := os.OpenFile(c.st.dir+"/calls.log", os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintf(f, "%s\n", jsonLine(c.args))
		f.Close()
	}
}

func (c *cli) main() int {
	dir := os.Getenv("CONTAINER_STANDIN_STATE")
	if dir == "" {
		fmt.Fprintln(os.Stderr, "container stand-in: set CONTAINER_STANDIN_STATE to a state directory")
		return 1
	}
	st, err := openStore(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "container stand-in:", err)
		return 1
	}
	c.st = st
	c.log()
	if images := os.Getenv("CONTAINER_STANDIN_IMAGES"); images != "" && len(st.st.Images) == 0 {
		for _, ref := range strings.Split(images, ",") {
			st.st.Images[normalizeRef(ref)] = "sha256:" + fakeDigest(ref)
		}
	}
	c.refresh()
	err = c.dispatch()
	c.pruneBridge()
	if serr := st.save(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		if ee, ok := err.(*exitError); ok {
			fmt.Fprint(os.Stderr, ee.msg)
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		return 1
	}
	return 0
}

func (c *cli) sub() string {
	if len(c.args) == 0 {
		return ""
	}
	return c.args[0]
}

func (c *cli) dispatch() error {
	sub := c.sub()
	if sub == "--version" {
		fmt.Println(c.versionLine())
		return nil
	}
	if c.fault("hang", sub) || (len(c.args) > 1 && c.fault("hang", sub+" "+c.args[1])) {
		c.st.unlock()
		time.Sleep(24 * time.Hour)
	}
	needsServer := !(sub == "system" && len(c.args) > 1 && (c.args[1] == "start" || c.args[1] == "status"))
	if needsServer && (!c.st.st.SystemRunning || c.fault("apiserver-down", sub)) {
		if sub == "" {
			return c.usage("", "Missing expected argument '<subcommand>'")
		}
		return c.xpcDown()
	}
	if needsServer && c.st.st.APIServerHung && !(sub == "system" && len(c.args) > 1 && c.args[1] == "stop") {
		// A registered but hung apiserver: XPC requests without a response
		// timeout wait for ever (XPCClient.swift send).
		c.st.unlock()
		time.Sleep(24 * time.Hour)
	}
	rest := c.args[1:]
	switch sub {
	case "system":
		return c.system(rest)
	case "ls", "list":
		return c.list(rest)
	case "inspect":
		return c.inspect(rest)
	case "run":
		return c.run(rest)
	case "start":
		return c.start(rest)
	case "stop":
		return c.stop(rest)
	case "kill":
		return c.kill(rest)
	case "delete", "rm":
		return c.delete(rest)
	case "logs":
		return c.logs(rest)
	case "exec":
		return c.exec(rest)
	case "image":
		return c.image(rest)
	case "volume":
		return c.volumeCmd(rest)
	}
	return c.usage("", fmt.Sprintf("Unexpected argument '%s'", sub))
}

func (c *cli) versionLine() string {
	if c.version[0] == 0 && c.version[1] < 2 {
		return fmt.Sprintf("container CLI version %s (build: release, commit: 0fd8692, sdk: MacOS 15)", c.vraw)
	}
	return fmt.Sprintf("container CLI version %s (build: release, commit: af405ff)", c.vraw)
}

// usage is swift-argument-parser's reaction to bad arguments: exit 64.
func (c *cli) usage(cmd, msg string) *exitError {
	name := strings.TrimSpace("container " + cmd)
	return &exitError{64, fmt.Sprintf("Error: %s\nUsage: %s [<options>] ...\n  See '%s --help' for more information.\n", msg, name, name)}
}

// flagSpec: value-taking flags and the version they appeared in.
type flagSpec struct {
	value bool
	since [3]int
}

// parse splits args into flag values and positionals, per swift-argument-parser:
// --flag value, --flag=value, -f value; anything after the first positional of
// `run`/`exec` belongs to the process.
func (c *cli) parse(cmd string, args []string, specs map[string]flagSpec, stopAtPositional bool) (map[string][]string, []string, error) {
	flags := map[string][]string{}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if stopAtPositional && len(pos) > 0 {
			pos = append(pos, args[i:]...)
			break
		}
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		spec, ok := specs[name]
		if !ok || !c.atLeast(spec.since[0], spec.since[1], spec.since[2]) {
			return nil, nil, c.usage(cmd, fmt.Sprintf("Unknown option '%s'", name))
		}
		if spec.value && !hasVal {
			if i+1 >= len(args) {
				return nil, nil, c.usage(cmd, fmt.Sprintf("Missing value for '%s <value>'", name))
			}
			i++
			val = args[i]
		}
		flags[canonical(name)] = append(flags[canonical(name)], val)
	}
	return flags, pos, nil
}

// canonical maps short flags to long ones.
func canonical(name string) string {
	if long, ok := map[string]string{"-d": "--detach", "-l": "--label", "-p": "--publish", "-c": "--cpus", "-m": "--memory",
		"-v": "--volume", "-e": "--env", "-a": "--all", "-q": "--quiet", "-s": "--signal", "-t": "--time", "-f": "--force",
		"-n": "-n", "-i": "--input"}[name]; ok {
		return long
	}
	return name
}

func has(flags map[string][]string, name string) bool { _, ok := flags[name]; return ok }

func last(flags map[string][]string, name string) string {
	v := flags[name]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}
