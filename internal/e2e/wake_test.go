package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/builder/wakestate"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// wakeWorld is a world whose builder has keys and an initialised store but
// is stopped, with Nix's trust set up and `serve` not yet started.
func wakeWorld(t *testing.T, config string) (*testenv.World, *host) {
	t.Helper()
	w, _ := setupWithoutWaker(t, nil)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + config)
	mustWB(t, "start")
	mustWB(t, "stop")
	return w, newHost(t)
}

func runs(w *testenv.World) int { return len(w.CallsStarting("run")) }

func wakerState(t *testing.T, w *testenv.World) wakestate.State {
	t.Helper()
	s, _, err := wakestate.Read(w.DataDir)
	if err != nil || s == nil {
		t.Fatalf("waker.json: %v", err)
	}
	return *s
}

// running reports whether the builder's container runs (not whether SSH
// answers this instant: a loaded machine may be slow to).
func running(w *testenv.World) bool {
	var rep struct{ Container struct{ State string } }
	_ = json.Unmarshal([]byte(wb(w.T, "status", "--json").stdout), &rep)
	return rep.Container.State == "running"
}

// A stopped builder is started by Nix's connection, stopped after idle-stop,
// and started again by the next build.
func TestOnDemandStartAndIdleStop(t *testing.T) {
	w, h := wakeWorld(t, `idle-stop = "2s"`+"\n")
	k := w.Serve()
	if running(w) {
		t.Fatal("the builder should be stopped before the first build")
	}
	before := runs(w)
	drv := h.derivation("woken", `echo "woken $RANDOM$RANDOM" > $out`)
	out, err := h.build(filepath.Join(h.Work, "c1"), drv, 60*time.Second)
	if err != nil || !strings.Contains(out, "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("build through a stopped builder: %v\n%s\n--- serve\n%s", err, out, k.Output())
	}
	if n := runs(w) - before; n != 1 {
		t.Fatalf("%d container runs for one build", n)
	}
	waitFor(t, 60*time.Second, func() bool { return wakerState(t, w).Builder == wakestate.Stopped && !running(w) })
	if !strings.Contains(k.Output(), "stopping the builder") {
		t.Fatalf("serve did not log the idle stop:\n%s", k.Output())
	}
	drv2 := h.derivation("woken-again", `echo "again $RANDOM$RANDOM" > $out`)
	if out, err := h.build(filepath.Join(h.Work, "c2"), drv2, 60*time.Second); err != nil {
		t.Fatalf("build after the idle stop: %v\n%s\n--- serve\n%s", err, out, k.Output())
	}
	if n := runs(w) - before; n != 2 {
		t.Fatalf("%d container runs for two builds with an idle stop between", n)
	}
}

// A build longer than idle-stop is not cut, nor is a `wrapix-builder ssh`
// session that does not go through serve.
func TestIdleStopWaitsForWork(t *testing.T) {
	w, h := wakeWorld(t, `idle-stop = "1s"`+"\n")
	k := w.Serve()
	// The build (through serve) and a direct session (not through serve)
	// overlap, so the builder cannot stop between them: the session starts
	// while the build runs and outlasts it (the durations name the processes).
	slow := h.derivation("slow-build", `sleep 5; echo slow $RANDOM > $out`)
	built := make(chan error, 1)
	go func() {
		out, err := h.build(filepath.Join(h.Work, "c1"), slow, 90*time.Second)
		if err != nil {
			err = fmt.Errorf("%w\n%s", err, out)
		}
		built <- err
	}()
	waitFor(t, 60*time.Second, func() bool { return processRunning("sleep\x005\x00") })
	session := make(chan result, 1)
	go func() { session <- wb(t, "ssh", "sleep 13; echo session-done") }()
	if err := <-built; err != nil {
		t.Fatalf("a build longer than idle-stop: %v\n--- serve\n%s", err, k.Output())
	}
	if strings.Contains(k.Output(), "stopping the builder") {
		t.Fatalf("stopped during the build:\n%s", k.Output())
	}
	// The direct session keeps it up: the idle check asks the builder.
	waitFor(t, 30*time.Second, func() bool { return strings.Contains(k.Output(), "at work") })
	// While the session holds it: watching is no work. The app following the
	// build log (on its own kept-alive connection) and `status` polling
	// without pause must not keep the builder up once the session ends. Both
	// did: every poll's connection and nix-daemon worker and the follower's
	// session counted as work, so it never stopped.
	ks, err := keys.Load(paths.Layout{ConfigDir: w.ConfigDir, DataDir: w.DataDir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follower, err := sshclient.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", w.Port), sshclient.User, ks.Client.Signer, ks.Host.Public)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	// status no longer asks sshd for a stream-local forward it refuses
	// (OpenSSH denies them all with TCP forwarding off).
	wb(t, "status", "--json")
	if logs := wb(t, "logs"); strings.Contains(logs.stdout+logs.stderr, "but the request was denied") || !strings.Contains(logs.stdout+logs.stderr, "ready: sshd") {
		t.Fatalf("the builder's log (sshd refused the status probe's forward to nix-daemon's socket?):\n%s%s", logs.stdout, logs.stderr)
	}
	followed := make(chan error, 1)
	go func() { followed <- lifecycle.FollowBuilds(ctx, follower, 0, func(string) {}) }()
	var polls sync.WaitGroup
	polls.Add(1)
	go func() {
		defer polls.Done()
		for ctx.Err() == nil && wakerState(t, w).Builder != wakestate.Stopped {
			wb(t, "status", "--json")
		}
	}()
	if r := <-session; r.code != 0 || !strings.Contains(r.stdout, "session-done") {
		t.Fatalf("the ssh session was cut: %d %q %q\n--- serve\n%s", r.code, r.stdout, r.stderr, k.Output())
	}
	waitFor(t, 120*time.Second, func() bool { return wakerState(t, w).Builder == wakestate.Stopped })
	cancel()
	polls.Wait()
	<-followed
	if running(w) {
		t.Fatalf("the waker says stopped but the container runs\n--- serve\n%s", k.Output())
	}
}

// kill -9 of serve mid-build: the client fails, the builder and its store
// are untouched, the lock is free, and the next build through a new serve works.
func TestKillWakerMidBuild(t *testing.T) {
	w, h := wakeWorld(t, `idle-stop = "0"`+"\n")
	k := w.Serve()
	// 37 s: a sleep no other test runs, so the wait below sees this build
	// and not another one's (tests of other packages run at the same time).
	slow := h.derivation("slow", `sleep 37; echo late > $out`)
	done := make(chan error, 1)
	go func() {
		_, err := h.build(filepath.Join(h.Work, "c1"), slow, 90*time.Second)
		done <- err
	}()
	waitFor(t, 30*time.Second, func() bool { return processRunning("sleep\x0037\x00") })
	if err := k.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the build survived its connection being cut?")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the client hung after serve died")
	}
	if !running(w) {
		r := wb(t, "status")
		t.Fatalf("the builder stopped when serve died: %s\n--- serve\n%s\n--- builder\n%s", r.stdout, k.Output(), logs(w))
	}
	k2 := w.Serve()
	drv := h.derivation("after-kill", `echo after $RANDOM$RANDOM > $out`)
	if out, err := h.build(filepath.Join(h.Work, "c2"), drv, 60*time.Second); err != nil {
		t.Fatalf("build after serve was killed: %v\n%s\n--- serve\n%s", err, out, k2.Output())
	}
	mustWB(t, "stop") // the lock is free
	mustWB(t, "start")
	verify(t)
}

// A start that fails closes Nix's connection at once, with the reason logged
// and kept for status, doctor and the app.
func TestFailingWakeIsPromptAndExplained(t *testing.T) {
	for _, tc := range []struct {
		name, config, faults, reason string
	}{
		{"image missing", "image = \"missing:latest\"\nimage-flake = \"path:/nonexistent-wrapix-flake\"\n", "", "image"},
		{"container CLI hangs", "", "hang:run", "did not answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, h := wakeWorld(t, "")
			w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + tc.config)
			t.Setenv("CONTAINER_STANDIN_FAULTS", tc.faults)
			k := w.Serve("--runtime-timeout", "3s")
			drv := h.derivation("never", `echo never > $out`)
			t0 := time.Now()
			out, err := h.build(filepath.Join(h.Work, "c1"), drv, 120*time.Second)
			if err == nil {
				t.Fatalf("the build succeeded?\n%s", out)
			}
			if d := time.Since(t0); d > 45*time.Second {
				t.Fatalf("Nix waited %s for a start that failed", d)
			}
			st := wakerState(t, w)
			if st.LastFailure == nil || !strings.Contains(st.LastFailure.Reason, tc.reason) {
				t.Fatalf("last failure %+v, want a reason with %q\n--- serve\n%s", st.LastFailure, tc.reason, k.Output())
			}
			if !strings.Contains(k.Output(), "a build asked for the builder, but") {
				t.Fatalf("serve did not log the failure:\n%s", k.Output())
			}
			r := wb(t, "status", "--json")
			var rep struct {
				Waker struct {
					LastFailure struct{ Reason string } `json:"lastFailure"`
				} `json:"waker"`
			}
			_ = json.Unmarshal([]byte(r.stdout), &rep)
			if !strings.Contains(rep.Waker.LastFailure.Reason, tc.reason) {
				t.Fatalf("status does not show the failure:\n%s", r.stdout)
			}
		})
	}
}

// 20 connections to a stopped builder at once: exactly one `container run`,
// all 20 carried through to an authenticated SSH session.
func TestConcurrentWakeStartsOnce(t *testing.T) {
	w, _ := wakeWorld(t, "")
	w.Serve()
	before := runs(w)
	l, err := paths.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(l)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", w.NixPort)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			c, err := sshclient.Dial(ctx, addr, sshclient.User, ks.Client.Signer, ks.Host.Public)
			if err != nil {
				errs <- fmt.Errorf("connection %d: %w", i, err)
				return
			}
			defer c.Close()
			out, err := c.Output(ctx, fmt.Sprintf("echo served-%d", i))
			if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("served-%d", i) {
				errs <- fmt.Errorf("connection %d: %q %v", i, out, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := runs(w) - before; n != 1 {
		t.Fatalf("%d container runs for 20 concurrent connections", n)
	}
}

// imageFlake writes a tiny flake whose builder-image output is an OCI-layout
// tar naming the image this CLI runs (version.Image()), built by Debian's Nix with a static busybox.
func imageFlake(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	testenv.BusyboxDir(t, filepath.Join(dir, "bb"))
	flake := `{
  outputs = { self }: {
    packages.x86_64-linux.builder-image = derivation {
      name = "wrapix-builder-image.tar";
      system = "x86_64-linux";
      builder = "${./bb}/bin/sh";
      PATH = "${./bb}/bin";
      nonce = "` + fmt.Sprint(time.Now().UnixNano()) + `"; # a fresh build every run
      args = [ "-c" ''
        mkdir d && cd d
        echo '{"imageLayoutVersion":"1.0.0"}' > oci-layout
        echo '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":0,"annotations":{"org.opencontainers.image.ref.name":"` + version.Image() + `"}}]}' > index.json
        tar -cf $out oci-layout index.json
      '' ];
    };
  };
}
`
	if err := writeFile(filepath.Join(dir, "flake.nix"), flake); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A first start without an image builds it with the user's Nix from
// image-flake (with progress), loads it, and the builder comes up; a wake
// does the same for a build.
func TestFirstStartBuildsItsImage(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	flake := imageFlake(t)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image-flake = "path:` + flake + `"` + "\n")
	t.Setenv("CONTAINER_STANDIN_IMAGES", "") // nothing loaded
	t.Setenv("NIX_CONFIG", "build-users-group =\nsubstituters =")
	r := wb(t, "start")
	if r.code != 0 {
		t.Fatalf("first start without an image: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"is not loaded: building it with Nix from path:" + flake + "#builder-image", "nix: building '/nix/store/", "loading the builder image from /nix/store/"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("no %q in the progress:\n%s", want, r.stderr)
		}
	}
	if n := len(w.CallsStarting("image", "load")); n != 1 {
		t.Fatalf("%d image loads", n)
	}
	// The next start finds it loaded.
	mustWB(t, "stop")
	mustWB(t, "start")
	if n := len(w.CallsStarting("image", "load")); n != 1 {
		t.Fatalf("the image was loaded again (%d)", n)
	}
	// A broken image-flake: one clear error naming the flake and the fix.
	mustWB(t, "stop")
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image = "other:latest"` + "\n" + `image-flake = "path:/nonexistent-wrapix-flake"` + "\n")
	r = wb(t, "start")
	if r.code != 4 || !strings.Contains(r.stderr, "building the builder image with Nix (path:/nonexistent-wrapix-flake#builder-image) failed") || !strings.Contains(r.stderr, "image-flake") {
		t.Fatalf("a broken image-flake: %d\n%s", r.code, r.stderr)
	}
}

func writeFile(p, content string) error { return os.WriteFile(p, []byte(content), 0o644) }

// A wake slower than ssh's old ConnectTimeout (10 s, which also bounds the
// wait for sshd's banner) still gives Nix its build: the drop-in's
// ConnectTimeout covers a start (start-timeout's default).
func TestSlowWakeStillBuilds(t *testing.T) {
	w, h := wakeWorld(t, "")
	// A container CLI whose `run` takes 12 s (a cold Mac: the VM boots, the store mounts).
	slow := t.TempDir()
	standin := filepath.Join(testenv.Binaries(t), "container")
	if err := os.WriteFile(filepath.Join(slow, "container"), []byte("#!/bin/sh\n[ \"$1\" = run ] && sleep 12\nexec "+standin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", slow+string(os.PathListSeparator)+os.Getenv("PATH"))
	k := w.Serve()
	drv := h.derivation("slow-wake", `echo "slow wake $RANDOM" > $out`)
	if out, err := h.build(filepath.Join(h.Work, "c1"), drv, 120*time.Second); err != nil {
		t.Fatalf("a build that waited 12 s for the builder to start: %v\n%s\n--- serve\n%s", err, out, k.Output())
	}
}

// A wake never builds the image (issue 17 point 4): that can outlast the
// connecting build's wait. Without the image it fails at once, naming the
// fix (`wrapix-builder start`, which builds it with progress), and runs no
// Nix build and no image load; `start` then builds it.
func TestWakeNeverBuildsTheImage(t *testing.T) {
	w, h := wakeWorld(t, "")
	flake := imageFlake(t)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image = "other:latest"` + "\n" + `image-flake = "path:` + flake + `"` + "\n")
	t.Setenv("NIX_CONFIG", "build-users-group =\nsubstituters =")
	loads := len(w.CallsStarting("image", "load"))
	k := w.Serve()
	drv := h.derivation("no-image", `echo no image > $out`)
	t0 := time.Now()
	out, err := h.build(filepath.Join(h.Work, "c1"), drv, 120*time.Second)
	if err == nil {
		t.Fatalf("the build succeeded without an image?\n%s", out)
	}
	d := time.Since(t0)
	st := wakerState(t, w)
	if st.LastFailure == nil || !strings.Contains(st.LastFailure.Reason, "wrapix-builder start") {
		t.Fatalf("last failure %+v, want the fix `wrapix-builder start`\n--- serve\n%s", st.LastFailure, k.Output())
	}
	if n := len(w.CallsStarting("image", "load")); n != loads {
		t.Fatalf("the wake loaded an image (%d loads): it built one", n-loads)
	}
	t.Logf("the wake without an image failed after %s", d.Round(100*time.Millisecond))
	if d > 45*time.Second {
		t.Fatalf("Nix waited %s for a wake without an image", d)
	}
}

// Prepare (setup as yourself before sudo, the app's Run setup… before its
// prompt) builds and loads the image with progress without running the
// builder, so a build's on-demand start finds it (issue 17 point 4).
func TestPrepareBuildsTheImageUpFront(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	flake := imageFlake(t)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n" + `image-flake = "path:` + flake + `"` + "\n")
	t.Setenv("CONTAINER_STANDIN_IMAGES", "") // nothing loaded
	t.Setenv("NIX_CONFIG", "build-users-group =\nsubstituters =")
	before := runs(w)
	r := wb(t, "prepare")
	if r.code != 0 {
		t.Fatalf("prepare without an image: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"is not loaded: building it with Nix from path:" + flake + "#builder-image", "nix: building '/nix/store/", "loading the builder image from /nix/store/"} {
		if !strings.Contains(r.stderr, want) {
			t.Fatalf("no %q in the progress:\n%s", want, r.stderr)
		}
	}
	if n := len(w.CallsStarting("image", "load")); n != 1 {
		t.Fatalf("%d image loads", n)
	}
	if runs(w) != before {
		t.Fatal("prepare ran the builder")
	}
	if r := wb(t, "prepare"); r.code != 0 || len(w.CallsStarting("image", "load")) != 1 {
		t.Fatalf("a second prepare: %d, %d loads\n%s", r.code, len(w.CallsStarting("image", "load")), r.stderr)
	}
}
