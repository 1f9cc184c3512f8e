package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/cli"
)

// userAtTheScreen collects a start's output and, once it names the Local
// Network permission, does what it says (the stand-in's permission is the
// file local-network-denied).
type userAtTheScreen struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	denied  string
	clicked time.Time
}

func (u *userAtTheScreen) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.clicked.IsZero() && bytes.Contains(p, []byte("Local Network and turn on container-runtime-linux")) {
		os.Remove(u.denied)
		u.clicked = time.Now()
	}
	return u.buf.Write(p)
}

func (u *userAtTheScreen) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.buf.String()
}

// The first hour on a fresh Mac (issue 17): no data directory, no image
// loaded, the container system not started, its kernel download broken off
// once, the Local Network permission missing until the user allows it. The
// README's commands — start, then setup — and a Linux build succeeds; each
// obstacle is named with its fix on the way.
func TestFirstHour(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	flake := imageFlake(t)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image-flake = "path:` + flake + `"` + "\n")
	t.Setenv("CONTAINER_STANDIN_IMAGES", "") // nothing loaded
	t.Setenv("NIX_CONFIG", "build-users-group =\nsubstituters =")
	t.Setenv("CONTAINER_STANDIN_SYSTEM", "stopped")
	t.Setenv("CONTAINER_STANDIN_KERNEL", "missing")
	t.Setenv("CONTAINER_STANDIN_KERNEL_INTERRUPTS", "1")
	t.Setenv("CONTAINER_STANDIN_KERNEL_SECONDS", "4")
	t.Setenv("CONTAINER_STANDIN_LOCALNET", "denied")
	tmp := filepath.Join(w.Home, "tmp")
	os.MkdirAll(tmp, 0o700)
	t.Setenv("TMPDIR", tmp)
	if _, err := os.Stat(w.DataDir); err == nil {
		t.Fatal("the data directory exists before the first start")
	}

	r := wb(t, "doctor")
	if !strings.Contains(r.stdout, "container system start") {
		t.Fatalf("doctor before anything does not say to start the system:\n%s", r.stdout)
	}

	u := &userAtTheScreen{denied: filepath.Join(w.StandinDir, "local-network-denied")}
	os.WriteFile(u.denied, nil, 0o644)
	t0 := time.Now()
	if code := cli.Main([]string{"start"}, nil, u, u); code != 0 {
		t.Fatalf("first start: exit %d\n%s", code, u.String())
	}
	out := u.String()
	for _, want := range []string{
		"starting the container system service",
		"no Linux kernel",                                      // the interrupted download, named
		"downloading the Linux kernel: ",                       // its progress
		"Linux kernel installed",                               // repaired
		"is not loaded: building it with",                      // the image
		"System Settings → Privacy & Security → Local Network", // the click
		"Local Network access is allowed now",
		"ready at",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the first start did not say %q:\n%s", want, out)
		}
	}
	if u.clicked.IsZero() {
		t.Fatal("the permission was never asked for")
	}
	t.Logf("first start: %s (permission asked %s in)", time.Since(t0).Round(time.Second), u.clicked.Sub(t0).Round(time.Second))

	w.Serve()
	h := newHost(t) // `wrapix-builder setup`
	drv := h.derivation("first", `echo "first build from $(hostname)" > $out`)
	bout, err := h.build(filepath.Join(h.Work, "client"), drv, 120*time.Second)
	if err != nil || !strings.Contains(bout, "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("the first Linux build: %v\n%s", err, bout)
	}
	r = wb(t, "doctor")
	for _, name := range []string{"container system service", "Linux kernel", "SSH banner", "nix-daemon on the builder"} {
		if l := lineWith(r.stdout, name); !strings.Contains(l, "ok") {
			t.Errorf("doctor after the first hour, %s: %q", name, l)
		}
	}
}

func lineWith(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
