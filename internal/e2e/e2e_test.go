// Package e2e proves the whole chain on Linux with real processes: the CLI
// starts the builder through the container stand-in in end-to-end mode (the
// project's entrypoint as PID 1 in new namespaces, Debian's sshd and
// nix-daemon), setup writes the trust into a temporary root, and a host-side
// Nix with its own /nix and max-jobs = 0 builds through it over ssh-ng.
// These tests need root, as CI has.
package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/cli"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

type result struct {
	stdout, stderr string
	code           int
}

func wb(t testing.TB, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Main(args, nil, &out, &errb)
	return result{out.String(), errb.String(), code}
}

func mustWB(t testing.TB, args ...string) string {
	t.Helper()
	r := wb(t, args...)
	if r.code != 0 {
		t.Fatalf("wrapix-builder %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// host is the Mac's side: the setup root and a client Nix of its own.
type host struct {
	*testenv.NixHost // Root: the Mac's /etc as setup left it (bind-mounted over /etc/nix and /etc/ssh for each build)
	// extraOptions go last on the client's command line (they override).
	extraOptions []string
}

func newHost(t testing.TB) *host {
	t.Helper()
	h := &host{NixHost: testenv.NewNixHost(t)}
	os.Chmod(filepath.Dir(h.Work), 0o711) // the test's temp root: others (the multi-user client) may traverse
	return h
}

// derivation writes a hermetic derivation file; script runs under busybox sh.
func (h *host) derivation(name, script string) string { return h.Derivation(name, script) }

// build runs nix-build single-user with its own /nix (clientNix) and the
// Mac's /etc as setup left it: Nix reads /etc/nix/nix.conf and the machines
// file itself, ssh reads the drop-in through /etc/ssh/ssh_config's Include.
func (h *host) build(clientNix, drv string, timeout time.Duration) (string, error) {
	return h.run(clientNix, drv, timeout, h.Root, "")
}

// buildOpts is build against another /etc and with NIX_SSHOPTS (benchmarks).
func (h *host) buildOpts(clientNix, drv, root, sshOpts string) (string, error) {
	return h.run(clientNix, drv, 60*time.Second, root, sshOpts)
}

func (h *host) run(clientNix, drv string, timeout time.Duration, root, sshOpts string) (string, error) {
	cmd := testenv.HostCommand(h.T, root, clientNix, `exec "$@"`, []string{"NIX_SSHOPTS=" + sshOpts},
		"timeout", strconv.Itoa(int(timeout.Seconds())), "nix-build", drv, "--no-out-link")
	cmd.Args = append(cmd.Args, h.extraOptions...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func outPath(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// builderStore is the builder's /nix as the stand-in keeps it (the volume's data).
func builderStore(w *testenv.World) string {
	return filepath.Join(w.StandinDir, "volumes/wrapix-builder-nix/data")
}

func setup(t *testing.T, extra map[string][]byte) (*testenv.World, string) {
	w, rootfs := setupWithoutWaker(t, extra)
	w.Serve() // Nix connects to port, which `serve` owns (docs/on-demand.md)
	return w, rootfs
}

func setupWithoutWaker(t *testing.T, extra map[string][]byte) (*testenv.World, string) {
	w := testenv.New(t)
	testenv.Require(t, "unshare", "ssh")
	rootfs := testenv.Image(t, extra)
	w.E2E(rootfs)
	w.WriteConfig(`systems = ["x86_64-linux"]` + "\n")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the builder's log\n%s", logs(w))
		}
	})
	return w, rootfs
}

func logs(w *testenv.World) string {
	data, _ := os.ReadFile(filepath.Join(w.StandinDir, "logs/wrapix-builder.log"))
	return string(data)
}

// start → ready; a host-side Nix builds through the builder; stop + start keeps
// the store; the same derivation from an empty client store is copied back, not rebuilt.
func TestRemoteBuildAndPersistence(t *testing.T) {
	w, _ := setup(t, nil)
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	if n := strings.Count(logs(w), "initialising the store (first start)"); n != 1 {
		t.Fatalf("first start initialised %d times:\n%s", n, logs(w))
	}
	h := newHost(t)
	drv := h.derivation("hello", `echo "hello $RANDOM$RANDOM from $(hostname)" > $out`)
	out, err := h.build(filepath.Join(h.Work, "client1"), drv, 60*time.Second)
	if err != nil {
		t.Fatalf("remote build: %v\n%s\n--- builder log\n%s", err, out, logs(w))
	}
	if !strings.Contains(out, "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("not built on the builder:\n%s", out)
	}
	p := outPath(out)
	client, err := os.ReadFile(filepath.Join(h.Work, "client1", strings.TrimPrefix(p, "/nix")))
	if err != nil {
		t.Fatalf("output not in the client's store: %v", err)
	}
	remote, err := os.ReadFile(filepath.Join(builderStore(w), strings.TrimPrefix(p, "/nix")))
	if err != nil || !bytes.Equal(remote, client) {
		t.Fatalf("output not in the builder's store: %v", err)
	}

	mustWB(t, "stop")
	if !strings.Contains(logs(w), "wrapix-builder: stopped") {
		t.Fatalf("the entrypoint did not stop cleanly on SIGTERM:\n%s", logs(w))
	}
	mustWB(t, "start")
	if n := strings.Count(logs(w), "initialising the store"); n != 1 {
		t.Fatalf("the second start initialised the store again (%d)", n)
	}
	out, err = h.build(filepath.Join(h.Work, "client2"), drv, 60*time.Second)
	if err != nil {
		t.Fatalf("build after restart: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		// The client always says "building … on 'ssh-ng://…'"; a bare "building …" line is the builder really building.
		if strings.HasPrefix(l, "building '") && !strings.Contains(l, " on '") {
			t.Fatalf("rebuilt instead of copied back:\n%s", out)
		}
	}
	again, _ := os.ReadFile(filepath.Join(h.Work, "client2", strings.TrimPrefix(outPath(out), "/nix")))
	if !bytes.Equal(again, client) {
		t.Fatalf("different output after restart: %q vs %q", again, client)
	}
	// The store volume is its own ext4 filesystem mounted at /nix by the runtime (no mount of the entrypoint's).
	if r := wb(t, "ssh", `awk '$5 == "/nix" {print $(NF-2)}' /proc/self/mountinfo`); strings.TrimSpace(r.stdout) != "ext4" {
		t.Fatalf("/nix is not the ext4 volume: %q %q", r.stdout, r.stderr)
	}
	// The image's tools profile is on the non-interactive SSH PATH and kept as a profile (a GC root).
	r := wb(t, "ssh", "wrapix-probe && readlink /nix/var/nix/profiles/wrapix-tools")
	if !strings.Contains(r.stdout, "probe from the seed profile") || !strings.Contains(r.stdout, "-wrapix-tools") {
		t.Fatalf("tools profile: %q %q", r.stdout, r.stderr)
	}
	verify(t)
}

// verify runs `nix-store --verify --check-contents` on the builder.
func verify(t *testing.T) {
	t.Helper()
	r := wb(t, "ssh", "nix-store --verify --check-contents 2>&1; echo rc=$?")
	if r.code != 0 || !strings.Contains(r.stdout, "rc=0") || strings.Contains(r.stdout, "was modified") {
		t.Fatalf("store verification failed: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// kill -9 of the builder mid-build: the client fails cleanly and quickly, the
// next start works, the store verifies, nothing already built is lost.
func TestKillMidBuild(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	h := newHost(t)
	done := h.derivation("done-before", `echo kept $RANDOM > $out`)
	out, err := h.build(filepath.Join(h.Work, "c0"), done, 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kept := outPath(out)
	slow := h.derivation("slow", `sleep 30; echo late > $out`)
	type res struct {
		out string
		err error
		dur time.Duration
	}
	ch := make(chan res, 1)
	go func() {
		t0 := time.Now()
		out, err := h.build(filepath.Join(h.Work, "c1"), slow, 90*time.Second)
		ch <- res{out, err, time.Since(t0)}
	}()
	waitFor(t, 30*time.Second, func() bool { return processRunning("sleep\x0030") })
	time.Sleep(500 * time.Millisecond)
	if out, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	r := <-ch
	if r.err == nil {
		t.Fatalf("the build survived a killed builder?\n%s", r.out)
	}
	if r.dur > 60*time.Second {
		t.Fatalf("the client hung for %s after the builder died", r.dur)
	}
	if st := wb(t, "status"); st.code != 6 {
		t.Fatalf("status after kill: %d\n%s", st.code, st.stdout)
	}
	mustWB(t, "start")
	verify(t)
	if _, err := os.Stat(filepath.Join(builderStore(w), strings.TrimPrefix(kept, "/nix"))); err != nil {
		t.Fatalf("an output built before the crash was lost: %v", err)
	}
}

// processRunning looks for a process (the builder's build step) by its command line.
func processRunning(cmdline string) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		if data, err := os.ReadFile(d); err == nil && strings.HasPrefix(string(data), cmdline) {
			return true
		}
	}
	return false
}

// kill -9 while the first start copies the seed: the next start redoes the
// copy; nothing half-done is trusted.
func TestKillMidFirstStartCopy(t *testing.T) {
	big := make([]byte, 400<<20)
	rand.Read(big)
	w, _ := setup(t, map[string][]byte{"big-tool": big})
	r := make(chan result, 1)
	go func() { r <- wb(t, "start") }()
	waitFor(t, 30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(builderStore(w), ".wrapix-staging"))
		return err == nil
	})
	if out, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	if res := <-r; res.code == 0 {
		t.Log("start finished before the kill; the copy was too fast to interrupt")
	}
	if _, err := os.Stat(filepath.Join(builderStore(w), ".wrapix-seed-id")); err == nil {
		t.Fatal("the seed is marked done after an interrupted copy")
	}
	mustWB(t, "start")
	if n := strings.Count(logs(w), "initialising the store (first start)"); n < 2 {
		t.Fatalf("the interrupted first start was not redone:\n%s", logs(w))
	}
	verify(t)
	r2 := wb(t, "ssh", "nix-store --check-validity $(ls -d /nix/store/*-big-tool) && echo valid")
	if !strings.Contains(r2.stdout, "valid") {
		t.Fatalf("the seed path is not valid after the redo: %s %s", r2.stdout, r2.stderr)
	}
}

// An image upgrade imports the new closure into the existing store: earlier
// outputs stay, new tools arrive, the GC roots follow the new seed.
func TestImageUpgradeKeepsStore(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	h := newHost(t)
	out, err := h.build(filepath.Join(h.Work, "c"), h.derivation("before-upgrade", `echo $RANDOM > $out`), 60*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	earlier := outPath(out)
	mustWB(t, "stop")
	rootfs2 := testenv.Image(t, map[string][]byte{"new-tool": []byte("version 2\n")})
	t.Setenv("CONTAINER_STANDIN_ROOTFS", rootfs2)
	mustWB(t, "start")
	if !strings.Contains(logs(w), "importing the new image's tools") {
		t.Fatalf("upgrade not imported:\n%s", logs(w))
	}
	r := wb(t, "ssh", "nix-store --check-validity "+earlier+" $(ls -d /nix/store/*-new-tool) && ls /nix/var/nix/gcroots/wrapix/ && echo ok")
	if !strings.Contains(r.stdout, "ok") {
		t.Fatalf("after upgrade: %s %s", r.stdout, r.stderr)
	}
	verify(t)
}

// Security against the running builder.
func TestSecurity(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	keys := filepath.Join(w.DataDir, "builder-keys")
	kh := filepath.Join(t.TempDir(), "kh")
	pub, _ := os.ReadFile(filepath.Join(keys, "host_ed25519.pub"))
	os.WriteFile(kh, []byte("[127.0.0.1]:"+strconv.Itoa(w.Port)+" "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o644)
	ssh := func(user string, opts ...string) (string, error) {
		args := append([]string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + kh, "-p", strconv.Itoa(w.Port)}, opts...)
		args = append(args, user+"@127.0.0.1", "true")
		out, err := exec.Command("ssh", args...).CombinedOutput()
		return string(out), err
	}
	if out, err := ssh("builder", "-i", filepath.Join(keys, "client_ed25519"), "-o", "IdentitiesOnly=yes"); err != nil {
		t.Fatalf("the key itself must work: %v %s", err, out)
	}
	for _, methods := range []string{"password", "keyboard-interactive"} {
		out, err := ssh("builder", "-o", "PreferredAuthentications="+methods, "-o", "PubkeyAuthentication=no")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("%s auth not refused: %v %s", methods, err, out)
		}
	}
	if out, err := ssh("root", "-i", filepath.Join(keys, "client_ed25519"), "-o", "IdentitiesOnly=yes"); err == nil {
		t.Errorf("root login accepted: %s", out)
	}
	// The port is bound on 127.0.0.1 only.
	testenv.Require(t, "ss")
	listen, err := exec.Command("ss", "-Hltn", "sport = :"+strconv.Itoa(w.Port)).Output()
	if err != nil || !strings.Contains(string(listen), "127.0.0.1:"+strconv.Itoa(w.Port)) {
		t.Fatalf("ss does not show the builder listening: %v %q", err, listen)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(listen)), "\n") {
		if l != "" && !strings.Contains(l, "127.0.0.1:"+strconv.Itoa(w.Port)) {
			t.Errorf("listening beyond loopback: %s", l)
		}
	}
	// sshd forwards nothing over TCP (only the status probe's stream-local
	// forward to nix-daemon's socket, which `status` uses), and takes logins
	// only from where the runtime's forwarder connects (the gateway).
	keyOpts := []string{"-i", filepath.Join(keys, "client_ed25519"), "-o", "IdentitiesOnly=yes"}
	if out, err := ssh("builder", append(keyOpts, "-W", "127.0.0.1:"+strconv.Itoa(w.Port))...); err == nil || !strings.Contains(out, "prohibited") {
		t.Errorf("TCP forwarding not refused: %v %s", err, out)
	}
	checkContainerNetwork(t, w, kh, string(pub), keyOpts)
	if st := wb(t, "status"); st.code != 0 {
		t.Errorf("the status probe's stream-local forward: %d %s", st.code, st.stdout)
	}
	// The client private key is nowhere inside the container.
	priv, _ := os.ReadFile(filepath.Join(keys, "client_ed25519"))
	secret := strings.Split(string(priv), "\n")[2] // a line of the key's base64 body
	r := wb(t, "ssh", "grep -rlF -- '"+secret+"' /wrapix /home /etc /run /tmp /root 2>/dev/null; echo done")
	if strings.TrimSpace(r.stdout) != "done" {
		t.Fatalf("client private key material found in the container: %q %s", r.stdout, r.stderr)
	}
}

// checkContainerNetwork: the container has its own network as on Apple's
// runtime (eth0 on the subnet, a default route via the gateway, the host
// at the gateway), the published port reaches sshd from the gateway's side,
// and any other address that reaches sshd itself — another container on
// the subnet, the host's other addresses — is refused by sshd.
func checkContainerNetwork(t *testing.T, w *testenv.World, kh, hostKey string, keyOpts []string) {
	t.Helper()
	testenv.Require(t, "ip")
	out, err := exec.Command("container", "inspect", "wrapix-builder").Output()
	if err != nil {
		t.Fatalf("container inspect: %v", err)
	}
	var inspected []struct {
		Status struct {
			Networks []struct{ IPv4Address, IPv4Gateway string }
		}
	}
	if err := json.Unmarshal(out, &inspected); err != nil || len(inspected) != 1 || len(inspected[0].Status.Networks) != 1 {
		t.Fatalf("container inspect: %v %s", err, out)
	}
	nw := inspected[0].Status.Networks[0]
	ip, subnet, err := net.ParseCIDR(nw.IPv4Address)
	gw := net.ParseIP(nw.IPv4Gateway)
	if err != nil || gw == nil || !subnet.Contains(gw) || ip.Equal(gw) {
		t.Fatalf("container address %q, gateway %q: want both on one subnet", nw.IPv4Address, nw.IPv4Gateway)
	}
	// The host has the gateway address (on the bridge standing for vmnet's), never the container's.
	var bridge string
	var others []net.IP
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			a, ok := a.(*net.IPNet)
			if !ok || a.IP.To4() == nil {
				continue
			}
			switch {
			case a.IP.Equal(ip):
				t.Fatalf("the container's address %s is the host's (%s): it shares the host's network", ip, i.Name)
			case a.IP.Equal(gw):
				bridge = i.Name
			case !a.IP.IsLoopback(): // loopback sources never leave the host
				others = append(others, a.IP)
			}
		}
	}
	if bridge == "" {
		t.Fatalf("no host interface has the gateway address %s", gw)
	}
	sshdAddr := net.JoinHostPort(ip.String(), "22")
	if !strings.Contains(logs(w), "wrapix-builder: ready: sshd on "+sshdAddr+",") {
		t.Fatalf("sshd does not listen on the container's address %s:\n%s", sshdAddr, logs(w))
	}
	// The logins through the published port came from the gateway.
	if !strings.Contains(logs(w), "Accepted publickey for builder from "+gw.String()+" port ") {
		t.Fatalf("sshd did not see the gateway %s as the peer of a login through the published port:\n%s", gw, logs(w))
	}
	// Another container on the subnet: an address of the subnet that is not the gateway.
	neighbour := slices.Clone(gw.To4())
	neighbour[3] = 250
	if out, err := exec.Command("ip", "addr", "add", neighbour.String()+"/32", "dev", bridge).CombinedOutput(); err != nil {
		t.Fatalf("add a neighbour's address: %v %s", err, out)
	}
	defer exec.Command("ip", "addr", "del", neighbour.String()+"/32", "dev", bridge).Run()
	f, _ := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0o644)
	f.WriteString(ip.String() + " " + strings.Join(strings.Fields(hostKey)[:2], " ") + "\n")
	f.Close()
	for _, from := range append([]net.IP{neighbour}, others...) {
		args := append([]string{"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + kh, "-o", "ConnectTimeout=5", "-b", from.String()}, keyOpts...)
		out, err := exec.Command("ssh", append(args, "builder@"+ip.String(), "true")...).CombinedOutput()
		if err == nil {
			t.Errorf("a login from %s (not the gateway) to sshd at %s was accepted", from, sshdAddr)
		}
		// The neighbour reaches sshd (the subnet is on-link): sshd itself must refuse it.
		if from.Equal(neighbour) && (!strings.Contains(string(out), "Permission denied") ||
			!strings.Contains(logs(w), "User builder from "+from.String()+" not allowed because not listed in AllowUsers")) {
			t.Errorf("sshd did not refuse the neighbour %s by its AllowUsers rule: %s\n%s", from, out, logs(w))
		}
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// gc brings an over-cap store under its cap without touching the builder's own closure.
func TestGCBringsStoreUnderCap(t *testing.T) {
	_, _ = setup(t, nil)
	mustWB(t, "start")
	h := newHost(t)
	for i := 0; i < 3; i++ {
		drv := h.derivation("garbage-"+strconv.Itoa(i), `head -c 8000000 /dev/urandom > $out`)
		if out, err := h.build(filepath.Join(h.Work, "c"+strconv.Itoa(i)), drv, 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	r := wb(t, "ssh", "du -sk /nix/store")
	kib, _ := strconv.ParseInt(strings.Fields(r.stdout)[0], 10, 64)
	capKiB := kib - 12000 // needs at least two of the three 8 MB outputs gone
	out := mustWB(t, "gc", "--cap", strconv.FormatInt(capKiB, 10)+"KiB")
	if !strings.Contains(out, "store went from") {
		t.Fatalf("gc: %s", out)
	}
	r = wb(t, "ssh", "du -sk /nix/store")
	after, _ := strconv.ParseInt(strings.Fields(r.stdout)[0], 10, 64)
	if after > capKiB {
		t.Fatalf("store is %d KiB after gc, cap %d KiB", after, capKiB)
	}
	r = wb(t, "ssh", "for r in /nix/var/nix/gcroots/wrapix/*; do nix-store --check-validity $(readlink $r) || exit 1; done; echo roots-ok")
	if !strings.Contains(r.stdout, "roots-ok") {
		t.Fatalf("the builder's own closure was collected: %s %s", r.stdout, r.stderr)
	}
	verify(t)
	if out := mustWB(t, "gc", "--cap", "512GiB"); !strings.Contains(out, "nothing to do") {
		t.Fatalf("gc under cap: %s", out)
	}
}

// Multi-user: a root nix-daemon on the host side (its own /nix) reads the
// machines file setup wrote and builds through the builder for an
// unprivileged user, with root's copy of the key.
func TestMultiUserDaemonUsesMachinesFile(t *testing.T) {
	_, _ = setup(t, nil)
	testenv.Require(t, "setpriv")
	mustWB(t, "start")
	h := newHost(t)
	drv := h.derivation("multi-user", `echo "built for $RANDOM" > $out`)
	clientNix := filepath.Join(h.Work, "daemon-nix")
	userHome := filepath.Join(h.Work, "nobody-home")
	os.MkdirAll(userHome, 0o777)
	// The daemon reads /etc/nix/nix.conf and /etc/nix/machines (defaults, no NIX_CONF_DIR) and
	// connects with root's ssh, which reads /etc/ssh/ssh_config and through it the drop-in.
	script := `mkdir -p /nix/var/nix/daemon-socket
nix-daemon >"$WORK/daemon.log" 2>&1 &
daemon=$!
for i in $(seq 100); do [ -S /nix/var/nix/daemon-socket/socket ] && break; sleep 0.05; done
rc=0
setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$USER_HOME" NIX_REMOTE=daemon timeout 90 nix-build "$DRV" --no-out-link || rc=$?
kill $daemon
exit $rc`
	cmd := testenv.HostCommand(t, h.Root, clientNix, script, []string{"WORK=" + h.Work, "USER_HOME=" + userHome, "DRV=" + drv, "NIX_SSHOPTS="})
	out, err := cmd.CombinedOutput()
	daemonLog, _ := os.ReadFile(filepath.Join(h.Work, "daemon.log"))
	if err != nil {
		t.Fatalf("multi-user build: %v\n%s\n--- host daemon\n%s", err, out, daemonLog)
	}
	if !strings.Contains(string(out), "on 'ssh-ng://builder@wrapix-builder'") {
		t.Fatalf("not built remotely:\n%s", out)
	}
	p := outPath(string(out))
	if _, err := os.Stat(filepath.Join(clientNix, strings.TrimPrefix(p, "/nix"))); err != nil {
		t.Fatalf("output not in the host daemon's store: %v", err)
	}
}

// kill -9 of the builder while the client uploads a large input: the client
// fails cleanly, the partial path is never valid, the retry works.
func TestKillMidUpload(t *testing.T) {
	w, _ := setup(t, nil)
	mustWB(t, "start")
	h := newHost(t)
	big := filepath.Join(h.Work, "bigin")
	os.MkdirAll(big, 0o755)
	blob := make([]byte, 256<<20)
	rand.Read(blob)
	os.WriteFile(filepath.Join(big, "blob"), blob, 0o644)
	drv := filepath.Join(h.Work, "upload.nix")
	os.WriteFile(drv, []byte(`let bb = builtins.path { path = `+filepath.Join(h.Work, "bb")+`; name = "busybox"; };
  input = builtins.path { path = `+big+`; name = "bigin"; }; in
derivation { name = "uses-big-input"; system = "x86_64-linux"; builder = "${bb}/bin/sh";
  args = [ "-c" "${bb}/bin/busybox wc -c ${input}/blob > $out" ]; }
`), 0o644)
	ch := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = h.build(filepath.Join(h.Work, "c"), drv, 120*time.Second)
		ch <- err
	}()
	// Kill once the upload has started: the input's path shows up, unregistered, in the builder's store.
	waitFor(t, 60*time.Second, func() bool {
		entries, _ := os.ReadDir(filepath.Join(builderStore(w), "store"))
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), "-bigin") {
				return true
			}
		}
		return false
	})
	if o, err := exec.Command("container", "kill", "wrapix-builder").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, o)
	}
	select {
	case err := <-ch:
		if err == nil {
			t.Logf("the upload finished before the kill:\n%s", out)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the client hung after the builder died")
	}
	mustWB(t, "start")
	verify(t)
	out2, err := h.build(filepath.Join(h.Work, "c"), drv, 120*time.Second)
	if err != nil {
		t.Fatalf("retry after a killed upload: %v\n%s", err, out2)
	}
	got, _ := os.ReadFile(filepath.Join(h.Work, "c", strings.TrimPrefix(outPath(out2), "/nix")))
	if !strings.HasPrefix(strings.TrimSpace(string(got)), strconv.Itoa(256<<20)) {
		t.Fatalf("the retried build saw a different input: %q", got)
	}
}

// The builder collects garbage by itself when its store grows over the cap.
func TestAutomaticGC(t *testing.T) {
	w, _ := setup(t, nil)
	t.Setenv("CONTAINER_STANDIN_GUEST_ENV", `["WRAPIX_SUBSTITUTERS=", "WRAPIX_GC_EVERY=2", "WRAPIX_GC_MEASURE=du", "WRAPIX_STORE_CAP=20000000"]`)
	mustWB(t, "start")
	h := newHost(t)
	for i := 0; i < 3; i++ {
		drv := h.derivation("auto-garbage-"+strconv.Itoa(i), `head -c 9000000 /dev/urandom > $out`)
		if out, err := h.build(filepath.Join(h.Work, "g"+strconv.Itoa(i)), drv, 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	// Wait for the condition, not for a log line: on a loaded machine a
	// collection may run between two builds and the next one brings the
	// store over the cap again until the following round.
	deadline := time.Now().Add(120 * time.Second)
	for {
		collected := strings.Contains(logs(w), "wrapix-builder: garbage collected") // a finished collection, not one under way
		n := storeBytes(t)
		if collected && n >= 0 && n <= 20000000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("store is %d bytes, still over its 20 MB cap after 2 minutes of automatic gc\n%s", n, logs(w))
		}
		time.Sleep(500 * time.Millisecond)
	}
	verify(t)
}

// Where the builder cannot index the store (a runtime whose /dev hides the
// volume's disk: the stand-in's no-block-devices fault), /nix/store stays as
// Apple's formatter made it, without dir_index: the kernel refuses its
// 64999th subdirectory, however few bytes the store holds. Near that count
// (WRAPIX_STORE_DIRS_MAX, here just above the seed's) the builder collects
// all garbage though the size cap is far.
func TestStoreDirectoryLimitGC(t *testing.T) {
	w, _ := setup(t, nil)
	t.Setenv("CONTAINER_STANDIN_FAULTS", "no-block-devices")
	storeDirs := func() int {
		r := wb(t, "ssh", "stat -c %h /nix/store")
		n, err := strconv.Atoi(strings.TrimSpace(r.stdout))
		if err != nil {
			t.Fatalf("link count of /nix/store: %q %q", r.stdout, r.stderr)
		}
		return n - 2 // its own two links: the rest are its subdirectories
	}
	mustWB(t, "start")
	if !strings.Contains(logs(w), "warning: /nix/store stays unindexed (no ext4 block device for /nix in /dev)") {
		t.Fatalf("the builder did not say why the store stays unindexed:\n%s", logs(w))
	}
	if c := doctorCheck(t, "store directory"); c.Result != "warn" || !strings.Contains(c.Detail, "64998") {
		t.Fatalf("doctor's store directory check on an unindexed store: %+v", c)
	}
	limit := storeDirs() + 2
	mustWB(t, "stop")
	t.Setenv("CONTAINER_STANDIN_GUEST_ENV", `["WRAPIX_SUBSTITUTERS=", "WRAPIX_GC_EVERY=2", "WRAPIX_STORE_DIRS_MAX=`+strconv.Itoa(limit)+`"]`)
	mustWB(t, "start")
	h := newHost(t)
	for i := 0; i < 4; i++ {
		drv := h.derivation("store-dirs-"+strconv.Itoa(i), `mkdir $out`)
		if out, err := h.build(filepath.Join(h.Work, "d"+strconv.Itoa(i)), drv, 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		collected := strings.Contains(logs(w), "wrapix-builder: garbage collected: /nix/store holds")
		if n := storeDirs(); collected && n <= limit {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("/nix/store holds %d directories, still over %d after 2 minutes of automatic gc\n%s", n, limit, logs(w))
		}
		time.Sleep(500 * time.Millisecond)
	}
	verify(t)
}

// The size check runs soon after every start, not only after an hour of
// uptime (which a builder stopped after 30 idle minutes never reaches): a
// builder started over its cap has collected within a minute of ready,
// with the default schedule.
func TestGCSoonAfterStart(t *testing.T) {
	w, _ := setup(t, nil)
	t.Setenv("CONTAINER_STANDIN_GUEST_ENV", `["WRAPIX_SUBSTITUTERS="]`)
	mustWB(t, "start")
	h := newHost(t)
	for i := 0; i < 3; i++ {
		drv := h.derivation("late-garbage-"+strconv.Itoa(i), `head -c 9000000 /dev/urandom > $out`)
		if out, err := h.build(filepath.Join(h.Work, "g"+strconv.Itoa(i)), drv, 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	mustWB(t, "stop")
	t.Setenv("CONTAINER_STANDIN_GUEST_ENV", `["WRAPIX_SUBSTITUTERS=", "WRAPIX_GC_MEASURE=du", "WRAPIX_STORE_CAP=20000000"]`)
	mustWB(t, "start")
	ready := time.Now()
	if n := storeBytes(t); n <= 20000000 {
		t.Fatalf("the store (%d bytes) should start over the 20 MB cap", n)
	}
	for {
		if strings.Contains(logs(w), "wrapix-builder: garbage collected: store is") {
			if n := storeBytes(t); n >= 0 && n <= 20000000 {
				break
			}
		}
		if time.Since(ready) > time.Minute {
			t.Fatalf("not collected within a minute of ready (store %d bytes)\n%s", storeBytes(t), logs(w))
		}
		time.Sleep(500 * time.Millisecond)
	}
	verify(t)
}

// On Apple's volume (no dir_index, no dir_nlink, no hash seed; its disk in
// the container's /dev) the store ends up indexed: a new volume at its first
// start, and a volume an older release filled (here: started where the disk
// could not be reached, then given thousands of entries) once, at the next
// start; builds and the store's validity are unchanged.
func TestStoreIndexedInTheBuilder(t *testing.T) {
	w, _ := setup(t, nil)
	testenv.Require(t, "dumpe2fs", "lsattr")
	image := filepath.Join(w.StandinDir, "volumes/wrapix-builder-nix/volume.img")
	features := func() string {
		out, _ := exec.Command("dumpe2fs", "-h", image).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if f, ok := strings.CutPrefix(l, "Filesystem features:"); ok {
				return " " + strings.Join(strings.Fields(f), " ") + " "
			}
		}
		return ""
	}
	// An older release's volume: unindexed, seeded, then grown.
	t.Setenv("CONTAINER_STANDIN_FAULTS", "no-block-devices")
	mustWB(t, "start")
	mustWB(t, "stop")
	if f := features(); strings.Contains(f, " dir_index ") || strings.Contains(f, " dir_nlink ") {
		t.Fatalf("an unreachable volume was changed: %s", f)
	}
	store := filepath.Join(builderStore(w), "store")
	for i := 0; i < 4000; i++ {
		if err := os.Mkdir(filepath.Join(store, fmt.Sprintf("%032d-old-path", i)), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	entries := func() []string {
		es, err := os.ReadDir(store)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	before := entries()
	t.Setenv("CONTAINER_STANDIN_FAULTS", "")
	mustWB(t, "start")
	l := logs(w)
	if !strings.Contains(l, "dir_index and dir_nlink turned on") || !strings.Contains(l, "indexing /nix/store (once;") || !strings.Contains(l, "/nix/store is indexed") {
		t.Fatalf("the builder did not index its store:\n%s", l)
	}
	if f := features(); !strings.Contains(f, " dir_index ") || !strings.Contains(f, " dir_nlink ") {
		t.Fatalf("volume features after the start: %s", f)
	}
	if out, err := exec.Command("lsattr", "-d", store).CombinedOutput(); err != nil || !strings.Contains(strings.Fields(string(out))[0], "I") {
		t.Fatalf("/nix/store is no indexed directory: %v %s", err, out)
	}
	if after := entries(); !slices.Equal(before, after) {
		t.Fatalf("the store's entries changed: %d before, %d after", len(before), len(after))
	}
	h := newHost(t)
	drv := h.derivation("after-indexing", `echo "indexed $RANDOM$RANDOM" > $out`)
	if out, err := h.build(filepath.Join(h.Work, "c"), drv, 60*time.Second); err != nil {
		t.Fatalf("build on the indexed store: %v\n%s", err, out)
	}
	verify(t)
	if c := doctorCheck(t, "store directory"); c.Result != "ok" || !strings.Contains(c.Detail, "indexed") {
		t.Fatalf("doctor's store directory check: %+v", c)
	}
	// Once: the next start finds it done.
	mustWB(t, "stop")
	mustWB(t, "start")
	if n := strings.Count(logs(w), "indexing /nix/store"); n != 1 {
		t.Fatalf("the store was indexed %d times:\n%s", n, logs(w))
	}
}

// doctorCheck is one of `doctor --json`'s checks.
func doctorCheck(t *testing.T, name string) (c struct{ Name, Result, Detail, Fix string }) {
	t.Helper()
	var doc struct {
		Checks []struct{ Name, Result, Detail, Fix string }
	}
	r := wb(t, "doctor", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("doctor --json: %v\n%s", err, r.stdout)
	}
	for _, c := range doc.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("doctor has no %q check:\n%s", name, r.stdout)
	return c
}

// storeBytes is the builder's /nix/store as du counts it, or -1.
func storeBytes(t *testing.T) int64 {
	r := wb(t, "ssh", "du -sk /nix/store")
	if f := strings.Fields(r.stdout); len(f) > 0 {
		kib, _ := strconv.ParseInt(f[0], 10, 64)
		return kib * 1024
	}
	return -1
}

// A store from an older release on a volume without a journal (container
// before 0.12): the builder leaves /nix/store linear, says why, and starts
// — the rebuild it declines must not end the entrypoint (set -e).
func TestOldStoreWithoutJournalStarts(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	t.Setenv("CONTAINER_STANDIN_VERSION", "0.11.0")
	mustWB(t, "start")
	mustWB(t, "stop")
	store := filepath.Join(builderStore(w), "store")
	for i := 0; i < 3000; i++ {
		if err := os.Mkdir(filepath.Join(store, fmt.Sprintf("%032d-old-path", i)), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(builderStore(w), ".wrapix-store-indexed")); err != nil {
		t.Fatal(err)
	}
	mustWB(t, "start")
	if l := logs(w); !strings.Contains(l, "stays unindexed (the store volume has no journal") || strings.Contains(l, "indexing /nix/store (once;") {
		t.Fatalf("an unjournaled volume's old store:\n%s", l)
	}
	if r := wb(t, "ssh", "ls /nix/store | wc -l; nix-store --verify && echo verified"); !strings.Contains(r.stdout, "verified") {
		t.Fatalf("the builder's store after the start: %s %s", r.stdout, r.stderr)
	}
}
