// Package testenv builds the test world: a private $HOME with XDG
// directories, the container stand-in on $PATH, free loopback ports, and a
// real sshd when a test needs one.
package testenv

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/version"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Binaries builds the container stand-in and the wrapix-builder CLI once per
// test process and returns the directory holding them (`container`,
// `wrapix-builder`).
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "wrapix-test-bin-")
		if buildErr != nil {
			return
		}
		for out, pkg := range map[string]string{
			"container":      "github.com/wrapix/wrapix-builder/internal/standin/container",
			"wrapix-builder": "github.com/wrapix/wrapix-builder/cmd/wrapix-builder",
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			if msg, err := cmd.CombinedOutput(); err != nil {
				buildErr = &buildError{pkg, string(msg), err}
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatalf("building test binaries: %v", buildErr)
	}
	return binDir
}

type buildError struct {
	pkg, out string
	err      error
}

func (e *buildError) Error() string { return e.pkg + ": " + e.err.Error() + "\n" + e.out }

// World is one isolated user environment.
type World struct {
	T          testing.TB
	Home       string
	DataDir    string // $XDG_DATA_HOME/wrapix
	ConfigDir  string // $XDG_CONFIG_HOME/wrapix
	StandinDir string // the stand-in's state
	Port       int    // container-port: where the container publishes its sshd (our tools connect here)
	NixPort    int    // port: where Nix connects; `wrapix-builder serve` (Serve) owns it
}

// New sets $HOME, the XDG variables, $PATH (stand-in first) and the stand-in
// environment for the test, and writes a config with a free port.
func New(t testing.TB) *World {
	t.Helper()
	bin := Binaries(t)
	home := t.TempDir()
	w := &World{T: t, Home: home, DataDir: filepath.Join(home, "data", "wrapix"), ConfigDir: filepath.Join(home, "config", "wrapix"),
		StandinDir: filepath.Join(home, "standin"), Port: FreePort(t), NixPort: FreePort(t)}
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("CONTAINER_STANDIN_STATE", w.StandinDir)
	t.Setenv("CONTAINER_STANDIN_IMAGES", version.Image())
	t.Setenv("CONTAINER_STANDIN_MODE", "record")
	t.Setenv("CONTAINER_STANDIN_VERSION", "")
	t.Setenv("CONTAINER_STANDIN_FAULTS", "")
	w.WriteConfig("")
	t.Cleanup(w.stopAll)
	return w
}

// WriteConfig writes config.toml: the port line plus extra.
func (w *World) WriteConfig(extra string) {
	w.T.Helper()
	if err := os.MkdirAll(w.ConfigDir, 0o755); err != nil {
		w.T.Fatal(err)
	}
	body := "port = " + itoa(w.NixPort) + "\ncontainer-port = " + itoa(w.Port) + "\nstart-timeout = \"20s\"\n" + extra
	if err := os.WriteFile(filepath.Join(w.ConfigDir, "config.toml"), []byte(body), 0o644); err != nil {
		w.T.Fatal(err)
	}
}

// Waker is a running `wrapix-builder serve` of this world.
type Waker struct {
	Cmd *exec.Cmd
	Log string // its stderr
}

// Serve starts `wrapix-builder serve` with the world's environment and waits
// until it listens on NixPort; it is stopped when the test ends.
func (w *World) Serve(args ...string) *Waker {
	w.T.Helper()
	logf := filepath.Join(w.Home, fmt.Sprintf("serve-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logf)
	if err != nil {
		w.T.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(Binaries(w.T), "wrapix-builder"), append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		w.T.Fatal(err)
	}
	f.Close()
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	w.T.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	wk := &Waker{Cmd: cmd, Log: logf}
	// serve writes waker.json once it listens.
	for {
		if data, err := os.ReadFile(filepath.Join(w.DataDir, "waker.json")); err == nil && bytes.Contains(data, []byte(fmt.Sprintf(`"pid": %d`, cmd.Process.Pid))) {
			return wk
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf)
			w.T.Fatalf("wrapix-builder serve exited: %s", log)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Output is what serve logged so far.
func (k *Waker) Output() string {
	data, _ := os.ReadFile(k.Log)
	return string(data)
}

// Calls returns the stand-in's recorded invocations, one argv per call.
func (w *World) Calls() [][]string {
	data, _ := os.ReadFile(filepath.Join(w.StandinDir, "calls.log"))
	var out [][]string
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var argv []string
		if err := jsonUnmarshal(line, &argv); err == nil {
			out = append(out, argv)
		}
	}
	return out
}

// CallsStarting returns the recorded invocations whose argv starts with prefix.
func (w *World) CallsStarting(prefix ...string) [][]string {
	var out [][]string
	for _, c := range w.Calls() {
		if len(c) >= len(prefix) && strings.Join(c[:len(prefix)], "\x00") == strings.Join(prefix, "\x00") {
			out = append(out, c)
		}
	}
	return out
}

// stopAll stops any container process the stand-in started (sshd mode).
func (w *World) stopAll() {
	cmd := exec.Command(filepath.Join(binDir, "container"), "stop", "--all", "--time", "1")
	cmd.Env = append(os.Environ(), "CONTAINER_STANDIN_STATE="+w.StandinDir, "CONTAINER_STANDIN_FAULTS=")
	_ = cmd.Run()
	unmountUnder(w.StandinDir) // e2e mode loop-mounts named volumes on this host: take them down with the world
	w.checkNoNetworkLeft()
}

// checkNoNetworkLeft: once its containers stopped, an e2e stand-in leaves
// no interface behind: its bridge "wbr<tag>" and the containers' veths
// "wbv<tag><n>", tag being the FNV-1a hash of the state directory
// (internal/standin/container/netns.go); the namespaces go with their
// processes. A leak fails the test and is removed.
func (w *World) checkNoNetworkLeft() {
	dir, err := filepath.Abs(w.StandinDir)
	if err != nil {
		return
	}
	h := fnv.New32a()
	h.Write([]byte(dir))
	tag := fmt.Sprintf("%08x", h.Sum32())
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Name == "wbr"+tag || strings.HasPrefix(i.Name, "wbv"+tag) {
			w.T.Errorf("the stand-in left network interface %s behind after stopping its containers", i.Name)
			exec.Command("ip", "link", "del", i.Name).Run()
		}
	}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// RequireBuilderUser makes sure the local account `builder` exists with a
// usable (non-locked) password field, as the image's builder user has; the
// stand-in's sshd mode logs in as it. Creating it needs root.
func RequireBuilderUser(t testing.TB) {
	t.Helper()
	if _, err := user.Lookup("builder"); err == nil {
		// sshd (UsePAM no) refuses a locked account ("!" in shadow): unlock it as the image does.
		if shadow, err := os.ReadFile("/etc/shadow"); err == nil && bytes.Contains(shadow, []byte("\nbuilder:!")) && os.Geteuid() == 0 {
			_ = exec.Command("usermod", "--password", "*", "builder").Run()
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test needs a local user `builder` (as root: useradd -m -s /bin/sh -p '*' builder)")
	}
	if out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", "builder").CombinedOutput(); err != nil {
		t.Fatalf("useradd builder: %v: %s", err, out)
	}
}

// Require fails the test (never skips) when a tool is missing: CI installs them.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + tool); err2 == nil {
				continue
			}
			t.Fatalf("%s is required (apt-get install nix-bin openssh-server openssh-client): %v", tool, err)
		}
	}
}
