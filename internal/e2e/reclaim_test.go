package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/status"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// storeSnapshot is what must not change when the store moves: every valid
// path, and every file of /nix/store (type, mode, size, content, link target).
type storeSnapshot struct {
	valid string
	files []string
}

func snapshot(t *testing.T, w *testenv.World, volume string) storeSnapshot {
	t.Helper()
	r := wb(t, "ssh", "nix path-info --all | sort")
	if r.code != 0 || strings.Count(r.stdout, "/nix/store/") < 3 {
		t.Fatalf("valid paths: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var s storeSnapshot
	s.valid = r.stdout
	root := filepath.Join(w.StandinDir, "volumes", volume, "data", "store")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == ".links" || strings.HasPrefix(rel, ".links/") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %d %s", fi.Size(), hex.EncodeToString(h.Sum(nil)))
		}
		s.files = append(s.files, line)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the store on volume %s: %v", volume, err)
	}
	sort.Strings(s.files)
	return s
}

func (s storeSnapshot) diff(o storeSnapshot) string {
	if s.valid != o.valid {
		return "valid paths differ:\n" + s.valid + "\n---\n" + o.valid
	}
	if len(s.files) != len(o.files) {
		return fmt.Sprintf("%d files before, %d after", len(s.files), len(o.files))
	}
	for i := range s.files {
		if s.files[i] != o.files[i] {
			return "first difference:\n" + s.files[i] + "\n" + o.files[i]
		}
	}
	return ""
}

func verifyStore(t *testing.T) {
	t.Helper()
	r := wb(t, "ssh", "nix-store --verify --check-contents 2>&1; echo rc=$?")
	if !strings.HasSuffix(strings.TrimSpace(r.stdout), "rc=0") || strings.Contains(r.stdout, "modified") || strings.Contains(r.stdout, "invalid") {
		t.Fatalf("nix-store --verify --check-contents:\n%s%s", r.stdout, r.stderr)
	}
}

func storeStatus(t *testing.T) status.Store {
	t.Helper()
	r := wb(t, "status", "--json")
	var rep status.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return rep.Store
}

func jsonOf(v any) string {
	data, _ := json.Marshal(v)
	return string(data)
}

func allocated(t *testing.T, w *testenv.World, volume string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(w.StandinDir, "volumes", volume, "volume.img"), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func volumes(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("container", "volume", "ls", "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("volume ls: %v %s", err, out)
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

func storeRecord(t *testing.T, w *testenv.World) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(w.DataDir, "store-volume.json"))
	if err != nil {
		return ""
	}
	var r struct{ Volume string }
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r.Volume
}

// gc --compact: garbage collected inside ext4 stays allocated on the "Mac"
// (the sparse volume.img, nothing trims); the compaction moves the live
// store into a fresh volume, with the same valid paths and the same files,
// verified by Nix, and the disk taken drops. Killed mid-way (the CLI or the
// copy container, kill -9), the old volume is still the store, it starts,
// and a redo finishes the job.
func TestReclaimDiskSpace(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	mustWB(t, "start")
	// 300 MiB of garbage: registered, unreferenced store paths.
	if r := wb(t, "ssh", `for i in $(seq 1 60); do head -c 5242880 /dev/urandom > /tmp/g; nix-store --add /tmp/g >/dev/null || exit 1; done; sync`); r.code != 0 {
		t.Fatalf("making garbage: %d %s%s", r.code, r.stdout, r.stderr)
	}
	// 20 live paths (GC roots): directories with files, an executable, a symlink.
	if r := wb(t, "ssh", `set -e; mkdir -p /nix/var/nix/gcroots/per-user/builder; for i in $(seq 1 20); do
		rm -rf /tmp/l; mkdir -p /tmp/l/sub; head -c 1048576 /dev/urandom > /tmp/l/sub/data; echo "#!/bin/sh" > /tmp/l/run; chmod +x /tmp/l/run; ln -s sub/data /tmp/l/link
		nix-store --add-root /nix/var/nix/gcroots/per-user/builder/keep$i -r "$(nix-store --add /tmp/l)" >/dev/null; done`); r.code != 0 {
		t.Fatalf("making live paths: %d %s%s", r.code, r.stdout, r.stderr)
	}
	out := mustWB(t, "gc", "--cap", "1KiB")
	if !strings.Contains(out, "store went from") {
		t.Fatalf("gc collected nothing: %s", out)
	}
	verifyStore(t)
	before := snapshot(t, w, "wrapix-builder-nix")
	diskBefore := allocated(t, w, "wrapix-builder-nix")

	// status and doctor show both numbers: the garbage is gone inside, not on the "Mac".
	st := storeStatus(t)
	if st.SizeBytes == nil || *st.SizeBytes != diskBefore || st.UsedBytes == nil || *st.UsedBytes > diskBefore-250<<20 {
		t.Fatalf("status store: %s (disk taken %d)", jsonOf(st), diskBefore)
	}
	if r := wb(t, "status"); !strings.Contains(r.stdout, "in use, ") || !strings.Contains(r.stdout, "disk taken on the Mac") {
		t.Fatalf("status text:\n%s", r.stdout)
	}
	if r := wb(t, "doctor"); !regexp.MustCompile(`store volume on the Mac +[0-9.]+ MiB in use, [0-9.]+ MiB disk taken`).MatchString(r.stdout) {
		t.Fatalf("doctor:\n%s", r.stdout)
	}

	// kill -9 of the CLI while the copy runs: the copy container is left
	// behind holding both volumes.
	cmd := exec.Command(filepath.Join(testenv.Binaries(t), "wrapix-builder"), "gc", "--compact", "--cap", "1KiB")
	cliLog := filepath.Join(w.Home, "compact-killed.log")
	f, err := os.Create(cliLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	copyLog := filepath.Join(w.StandinDir, "logs", "wrapix-builder-reclaim.log")
	waitFor(t, 2*time.Minute, func() bool {
		data, _ := os.ReadFile(copyLog)
		return strings.Contains(string(data), "wrapix-compact: copying")
	})
	cmd.Process.Kill()
	cmd.Wait()
	if v := storeRecord(t, w); v != "" {
		t.Fatalf("the store switched to %s before the copy was verified", v)
	}
	if got := volumes(t); got != "wrapix-builder-nix wrapix-builder-nix-b" {
		t.Fatalf("volumes mid-copy: %q", got)
	}
	if r := wb(t, "doctor"); !strings.Contains(r.stdout, "was interrupted") {
		t.Fatalf("doctor after a killed compaction:\n%s", r.stdout)
	}
	// The old store starts (the interrupted copy is undone) and is intact.
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	if got := volumes(t); got != "wrapix-builder-nix" {
		t.Fatalf("volumes after a start that undid the copy: %q", got)
	}
	if d := before.diff(snapshot(t, w, "wrapix-builder-nix")); d != "" {
		t.Fatalf("the store changed after an interrupted compaction: %s", d)
	}

	// kill -9 of the copy container itself: the CLI says so, nothing changes.
	copies := func() int {
		data, _ := os.ReadFile(copyLog)
		return strings.Count(string(data), "wrapix-compact: copying")
	}
	earlier := copies() // whether a deleted container's log stays is the stand-in's business
	done := make(chan result, 1)
	go func() { done <- wb(t, "gc", "--compact", "--cap", "1KiB") }()
	waitFor(t, 2*time.Minute, func() bool { return copies() > earlier })
	if out, err := exec.Command("container", "kill", "wrapix-builder-reclaim").CombinedOutput(); err != nil {
		t.Fatalf("kill: %v %s", err, out)
	}
	r := <-done
	if r.code == 0 || !strings.Contains(r.stderr, "did not verify") {
		t.Fatalf("gc --compact with its copy killed: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := volumes(t); got != "wrapix-builder-nix" || storeRecord(t, w) != "" {
		t.Fatalf("after a failed copy: volumes %q, record %q", got, storeRecord(t, w))
	}
	if r := wb(t, "status"); r.code != 0 { // it was running: it runs again, on the old store
		t.Fatalf("status after a failed copy: exit %d\n%s", r.code, r.stdout)
	}

	// The real thing, with the builder stopped (it is started to collect
	// garbage and left stopped).
	mustWB(t, "stop")
	out = mustWB(t, "gc", "--compact", "--cap", "1KiB")
	if !strings.Contains(out, "disk taken on the Mac") {
		t.Fatal(out)
	}
	if v := storeRecord(t, w); v != "wrapix-builder-nix-b" {
		t.Fatalf("store record after compaction: %q", v)
	}
	if got := volumes(t); got != "wrapix-builder-nix-b" {
		t.Fatalf("volumes after compaction: %q", got)
	}
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	verifyStore(t)
	if d := before.diff(snapshot(t, w, "wrapix-builder-nix-b")); d != "" {
		t.Fatalf("the store changed in the move: %s", d)
	}
	diskAfter := allocated(t, w, "wrapix-builder-nix-b")
	t.Logf("disk taken by the store volume: %d MiB before, %d MiB after (%s)", diskBefore>>20, diskAfter>>20, strings.TrimSpace(out))
	if diskAfter > diskBefore-200<<20 {
		t.Fatalf("the disk taken went from %d to %d bytes only", diskBefore, diskAfter)
	}
	// Stopped: the disk taken comes from the volume itself.
	mustWB(t, "stop")
	st = storeStatus(t)
	if st.SizeBytes == nil || *st.SizeBytes != allocated(t, w, "wrapix-builder-nix-b") || st.VolumeBytes == nil || *st.VolumeBytes != 512<<30 || st.Location != "wrapix-builder-nix-b" {
		t.Fatalf("status store while stopped: %s", jsonOf(st))
	}
	// Killed after the switch, before the old volume was deleted: start finishes.
	if out, err := exec.Command("container", "volume", "create", "wrapix-builder-nix").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	journal := `{"from":"wrapix-builder-nix","to":"wrapix-builder-nix-b","token":"x"}`
	if err := os.WriteFile(filepath.Join(w.DataDir, "reclaim.json"), []byte(journal), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := wb(t, "doctor"); !strings.Contains(r.stdout, "was interrupted") {
		t.Fatalf("doctor with an interrupted compaction:\n%s", r.stdout)
	}
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	if got := volumes(t); got != "wrapix-builder-nix-b" || storeRecord(t, w) != "wrapix-builder-nix-b" {
		t.Fatalf("after finishing an interrupted switch: volumes %q, record %q", got, storeRecord(t, w))
	}
	if _, err := os.Stat(filepath.Join(w.DataDir, "reclaim.json")); err == nil {
		t.Fatal("the journal outlived the compaction")
	}
	// A build still works on the moved store.
	if r := wb(t, "ssh", "echo new > /tmp/new && nix-store --add /tmp/new"); r.code != 0 {
		t.Fatalf("the moved store takes no new path: %s%s", r.stdout, r.stderr)
	}
}

// After a suspected compromise: reset-store (only with --yes) deletes the
// store with whatever root inside the builder left in it, rotates the host
// key (sshd inside could read it) and keeps the client key; the next start
// initialises a fresh store and answers with the new host key.
func TestResetStore(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	mustWB(t, "start")
	r := wb(t, "ssh", "echo planted > /tmp/p && nix-store --add /tmp/p")
	if r.code != 0 {
		t.Fatalf("%s%s", r.stdout, r.stderr)
	}
	planted := strings.TrimSpace(r.stdout)
	implant := filepath.Join(builderStore(w), "var", "implant") // as root inside the builder could
	if err := os.WriteFile(implant, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	keysBefore := mustWB(t, "keys", "show")
	if r := wb(t, "reset-store"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Fatalf("reset-store without --yes: exit %d %s", r.code, r.stderr)
	}
	if r := wb(t, "ssh", "nix-store --check-validity "+planted); r.code != 0 {
		t.Fatal("reset-store without --yes touched the store")
	}
	out := mustWB(t, "reset-store", "--yes")
	if !strings.Contains(out, "sudo wrapix-builder setup") {
		t.Fatal(out)
	}
	if got := volumes(t); got != "" {
		t.Fatalf("volumes after reset: %q", got)
	}
	keysAfter := mustWB(t, "keys", "show")
	host := func(s string) string { return regexp.MustCompile(`(?m)^host.*$`).FindString(s) }
	client := func(s string) string { return regexp.MustCompile(`(?m)^client.*$`).FindString(s) }
	if host(keysBefore) == host(keysAfter) || client(keysBefore) != client(keysAfter) || host(keysAfter) == "" {
		t.Fatalf("keys before:\n%s\nafter:\n%s", keysBefore, keysAfter)
	}
	if out := mustWB(t, "start"); !strings.Contains(out, "ready") {
		t.Fatal(out)
	}
	if n := strings.Count(logs(w), "initialising the store (first start)"); n != 2 {
		t.Fatalf("the store was initialised %d times", n)
	}
	if r := wb(t, "ssh", "nix-store --check-validity "+planted); r.code == 0 {
		t.Fatal("the planted path survived the reset")
	}
	if _, err := os.Stat(filepath.Join(builderStore(w), "var", "implant")); err == nil {
		t.Fatal("the implant survived the reset")
	}
	verifyStore(t)
}

// The move on an old CLI (0.9: the 0.x volume JSON, a volume without a
// journal) ends on the other volume with a store that starts and verifies,
// and a second move goes back to the first name.
func TestReclaimOnOldCLI(t *testing.T) {
	w, _ := setupWithoutWaker(t, nil)
	t.Setenv("CONTAINER_STANDIN_VERSION", "0.9.0")
	mustWB(t, "start")
	before := snapshot(t, w, "wrapix-builder-nix")
	out := mustWB(t, "gc", "--compact")
	if !strings.Contains(out, "wrapix-builder-nix → wrapix-builder-nix-b") {
		t.Fatal(out)
	}
	if got := volumes(t); got != "wrapix-builder-nix-b" {
		t.Fatalf("volumes: %q", got)
	}
	if r := wb(t, "status"); r.code != 0 {
		t.Fatalf("not running again after the move: %d\n%s", r.code, r.stdout)
	}
	verifyStore(t)
	if d := before.diff(snapshot(t, w, "wrapix-builder-nix-b")); d != "" {
		t.Fatal(d)
	}
	// And back: the names alternate.
	if out := mustWB(t, "gc", "--compact"); !strings.Contains(out, "wrapix-builder-nix-b → wrapix-builder-nix,") {
		t.Fatal(out)
	}
	if d := before.diff(snapshot(t, w, "wrapix-builder-nix")); d != "" {
		t.Fatal(d)
	}
}
