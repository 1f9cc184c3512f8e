//go:build linux

package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/ext4vol"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// storeIndexBlock is the entrypoint's store-index block, with what it uses
// of the rest of the entrypoint.
func storeIndexBlock(t testing.TB) string {
	return `set -eu
log() { echo "wrapix-builder: $*"; }
die() { log "error: $*"; exit 1; }
progress() { log "$*"; }
` + entrypointBlock(t, "store-index")
}

// appleVolume is a sparse ext4 image formatted as Apple's runtime formats a
// named volume, and a directory to mount it on.
func appleVolume(t testing.TB) (image, mnt string) {
	dir := t.TempDir()
	image, mnt = filepath.Join(dir, "volume.img"), filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if err := os.WriteFile(image, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(image, 8<<30); err != nil {
		t.Fatal(err)
	}
	if err := ext4vol.Format(image, true, false); err != nil {
		t.Fatal(err)
	}
	return image, mnt
}

// onVolume runs script (sh) with the volume loop-mounted at mnt, on the host.
func onVolume(t testing.TB, image, mnt, script string) string {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "sh", "-ec", `mount -o loop "$IMG" "$MNT"; cd "$MNT"; `+script)
	cmd.Env = append(os.Environ(), "IMG="+image, "MNT="+mnt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\n%s", err, script, out)
	}
	return string(out)
}

// runStoreIndex runs the entrypoint's block with busybox's applets as the
// container does, the volume mounted at /nix (in a private mount namespace).
func runStoreIndex(t testing.TB, image string) string {
	t.Helper()
	return runStoreIndexThen(t, image, "")
}

// runStoreIndexThen is runStoreIndex, then script in the same mount.
func runStoreIndexThen(t testing.TB, image, then string) string {
	t.Helper()
	bin := busyboxApplets(t)
	script := storeIndexBlock(t) + "store_index\necho \"indexed=$store_indexed\"\n" + then
	cmd := exec.Command("unshare", "-m", "sh", "-ec", `mount -o loop "$IMG" /nix; exec env -i PATH="$BIN" "$BB" sh -c "$SCRIPT"`)
	cmd.Env = append(os.Environ(), "IMG="+image, "BIN="+bin, "BB="+testenv.DebianBusybox, "SCRIPT="+script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("store_index: %v\n%s", err, out)
	}
	return string(out)
}

// names prints store-path-like names from, to (exclusive), one a line.
func names(from, to int) string {
	return fmt.Sprintf(`awk 'BEGIN { for (i = %d; i < %d; i++) printf "%%032d-p\n", i }'`, from, to)
}

func requireVolumeTools(t *testing.T) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.Require(t, "unshare", "mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck", "lsattr")
	if _, err := os.Stat(testenv.DebianBusybox); err != nil {
		t.Skipf("no %s (make deps)", testenv.DebianBusybox)
	}
}

// features reads the volume's ext4 features (unmounted).
func features(t *testing.T, image string) []string {
	f, err := ext4vol.ReadFeatures(image)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fsck checks the unmounted volume read-only: it recomputes every indexed
// directory's hashes from the superblock's seed and flags, so a directory
// indexed with other ones than the next mount uses fails here.
func fsck(t *testing.T, image string) {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fn", image).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
}

// An older release's store on Apple's volume (linear, thousands of entries:
// directories, files, symlinks, names with spaces) is indexed once: the
// features are on, /nix/store is an indexed directory with the same entries,
// the filesystem is consistent, lookups work after a remount, and the
// 64998-subdirectory limit is gone. A second start changes nothing.
func TestStoreIndexMigratesAnOldStore(t *testing.T) {
	requireVolumeTools(t)
	image, mnt := appleVolume(t)
	const n = 6000
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, n)+` | xargs mkdir
echo x > file.drv; ln -s file.drv link; mkdir ".links" "a name with spaces"; chmod 555 0*-p 2>/dev/null || true`)
	before := onVolume(t, image, mnt, "ls -A store | sort | md5sum; ls -A store | wc -l")
	if slices.Contains(features(t, image), "dir_index") {
		t.Fatal("Apple's volume should start without dir_index")
	}

	// In the same mount, a new directory indexed as it grows, with names
	// whose bytes go over 0x7f (signed and unsigned hashes differ there).
	out := runStoreIndexThen(t, image, `mkdir /nix/x; cd /nix/x; `+names(0, 600)+` | xargs mkdir
i=0; while [ $i -lt 300 ]; do mkdir "$(printf '\351t\351-%d' $i)"; i=$((i+1)); done`)
	if !strings.Contains(out, "indexed=1") || !strings.Contains(out, "indexing /nix/store (once;") {
		t.Fatalf("store_index did not index the store:\n%s", out)
	}
	fs := features(t, image)
	if !slices.Contains(fs, "dir_index") || !slices.Contains(fs, "dir_nlink") {
		t.Fatalf("features after indexing: %v\n%s", fs, out)
	}
	fsck(t, image)
	if lost := onVolume(t, image, mnt, `cd x; n=0; i=0; while [ $i -lt 300 ]; do [ -d "$(printf '\351t\351-%d' $i)" ] || n=$((n+1)); i=$((i+1)); done; lsattr -d .; echo "lost $n"`); !strings.Contains(lost, "lost 0") || !strings.Contains(lost, "-I-") {
		t.Fatalf("names indexed before the remount, looked up after it: %s", lost)
	}
	after := onVolume(t, image, mnt, "ls -A store | sort | md5sum; ls -A store | wc -l; lsattr -d store; ls -A")
	if !strings.HasPrefix(after, before) {
		t.Fatalf("the store's entries changed:\nbefore %s\nafter %s", before, after)
	}
	if f := strings.Fields(strings.Split(after, "\n")[2]); len(f) == 0 || !strings.Contains(f[0], "I") {
		t.Fatalf("/nix/store is not an indexed directory: %q", after)
	}
	if strings.Contains(after, ".wrapix-store-new") || strings.Contains(after, ".wrapix-store-old") {
		t.Fatalf("leftovers in /nix: %s", after)
	}
	// Past Apple's limit of 64998 subdirectories, then every name looked up
	// after a remount (the hash the kernel used must be the one it uses now).
	onVolume(t, image, mnt, `cd store; `+names(n, 65100)+` | xargs mkdir`)
	fsck(t, image)
	onVolume(t, image, mnt, `cd store; `+names(0, 65100)+` | xargs stat -c %F | sort | uniq -c | grep -qx ' *65100 directory'`)

	again := runStoreIndex(t, image)
	if !strings.Contains(again, "indexed=1") || strings.Contains(again, "indexing") || strings.Contains(again, "turned on") {
		t.Fatalf("a second start redid work:\n%s", again)
	}
}

// A fresh volume (first start: no /nix/store yet) gets the features and
// needs no rebuild.
func TestStoreIndexFreshVolume(t *testing.T) {
	requireVolumeTools(t)
	image, _ := appleVolume(t)
	out := runStoreIndex(t, image)
	if !strings.Contains(out, "indexed=1") || strings.Contains(out, "indexing /nix/store") {
		t.Fatalf("fresh volume:\n%s", out)
	}
	fs := features(t, image)
	if !slices.Contains(fs, "dir_index") || !slices.Contains(fs, "dir_nlink") {
		t.Fatalf("features: %v", fs)
	}
	fsck(t, image)
}

// Every point where a rebuild can be cut (kill -9, power loss: each step is
// a rename) is finished by the next start, with no entry lost. The states
// are laid out as the rebuild leaves them: on a volume whose features are
// on (the first step), without the "indexed" mark.
func TestStoreIndexResumesEveryCut(t *testing.T) {
	requireVolumeTools(t)
	fill := `mkdir -m 1775 "$1"; cd "$1"; ` + names(0, 3000) + ` | xargs mkdir; cd ..`
	for name, cut := range map[string]string{
		"moving":                      `set -- store; ` + fill + `; mkdir -m 1775 .wrapix-store-new; mv store/00000000000000000000000000001* .wrapix-store-new/`,
		"moved, before the renames":   `set -- .wrapix-store-new; ` + fill + `; mkdir -m 1775 store`,
		"between the renames":         `set -- .wrapix-store-new; ` + fill + `; mkdir -m 1775 .wrapix-store-old`,
		"renamed, old not yet gone":   `set -- store; ` + fill + `; mkdir -m 1775 .wrapix-store-old`,
		"never started (old release)": `set -- store; ` + fill,
	} {
		t.Run(name, func(t *testing.T) {
			image, mnt := appleVolume(t)
			runStoreIndex(t, image)
			onVolume(t, image, mnt, `rm .wrapix-store-indexed; rmdir store 2>/dev/null || true; `+cut)
			out := runStoreIndex(t, image)
			after := onVolume(t, image, mnt, "ls -A store | wc -l; ls -A; lsattr -d store")
			if !strings.Contains(out, "indexed=1") || !strings.HasPrefix(after, "3000\n") ||
				strings.Contains(after, ".wrapix-store-new") || strings.Contains(after, ".wrapix-store-old") ||
				!strings.Contains(after, "-I-") {
				t.Fatalf("after the cut %q:\n%s\n%s", name, out, after)
			}
			fsck(t, image)
		})
	}
}

// `gc --compact` copies the whole of /nix into a fresh volume (no
// dir_index), the "indexed" mark too: the copied store is linear and must
// be rebuilt at the next start all the same.
func TestStoreIndexIgnoresACopiedMark(t *testing.T) {
	requireVolumeTools(t)
	image, mnt := appleVolume(t)
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, 3000)+` | xargs mkdir; cd ..; echo > .wrapix-store-indexed`)
	out := runStoreIndex(t, image)
	after := onVolume(t, image, mnt, "ls -A store | wc -l; lsattr -d store")
	if !strings.Contains(out, "indexing /nix/store (once;") || !strings.HasPrefix(after, "3000\n") || !strings.Contains(after, "-I-") {
		t.Fatalf("a copied mark was trusted:\n%s\n%s", out, after)
	}
}

// Where the volume cannot be indexed, the builder says why and carries on
// (the directory-count GC stays on): a store that is no ext4 volume, and
// one with metadata checksums (which the superblock writes would break).
func TestStoreIndexFallsBack(t *testing.T) {
	requireVolumeTools(t)
	dir := t.TempDir()
	csum := filepath.Join(dir, "csum.img")
	os.WriteFile(csum, nil, 0o644)
	os.Truncate(csum, 1<<30)
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-O", "metadata_csum,^dir_index", csum).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	out := runStoreIndex(t, csum)
	if !strings.Contains(out, "warning: /nix/store stays unindexed (/dev/loop") || !strings.Contains(out, "has metadata checksums") || !strings.Contains(out, "indexed=\n") {
		t.Fatalf("metadata_csum volume:\n%s", out)
	}
	if slices.Contains(features(t, csum), "dir_index") {
		t.Fatal("a checksummed superblock was written")
	}
}

// appleVolumeWithout is appleVolume without a journal and with inline_data:
// how containerization formatted a volume made by container 0.6 or 0.7
// (journal=… is passed from 0.12 on; inline_data went in containerization
// 0.17).
func appleVolumeWithout(t testing.TB) (image, mnt string) {
	image, mnt = appleVolume(t)
	if err := ext4vol.Format(image, false, true); err != nil {
		t.Fatal(err)
	}
	return image, mnt
}

// A volume without a journal: a rebuild cut by a stop could lose entries
// (no fsck ever runs), so the features go on but /nix/store stays linear,
// said with the way out; the directory-count GC stays on.
func TestStoreIndexNoJournalStaysLinear(t *testing.T) {
	requireVolumeTools(t)
	image, mnt := appleVolumeWithout(t)
	if slices.Contains(features(t, image), "has_journal") {
		t.Fatal("the volume has a journal")
	}
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, 3000)+` | xargs mkdir`)
	// In the same mount, a new directory (inline at first) grows indexed.
	out := runStoreIndexThen(t, image, `mkdir /nix/x; cd /nix/x; `+names(0, 2000)+` | xargs mkdir; echo ---; ls -A /nix`)
	tail := out[strings.Index(out, "---"):]
	if !strings.Contains(out, "dir_index and dir_nlink turned on") || !strings.Contains(out, "stays unindexed (the store volume has no journal") ||
		strings.Contains(out, "indexing /nix/store") || !strings.Contains(out, "indexed=\n") || strings.Contains(tail, ".wrapix-store-") {
		t.Fatalf("unjournaled volume:\n%s", out)
	}
	if attr := onVolume(t, image, mnt, "lsattr -d store x"); strings.Contains(strings.Split(attr, "\n")[0], "-I-") || !strings.Contains(attr, "-I-") {
		t.Fatalf("/nix/store rebuilt, or a new directory not indexed: %s", attr)
	}
	fsck(t, image)
}

// A rebuild that fails part-way (here an entry that cannot be renamed)
// puts every moved entry back: the store is never left split, and the
// builder starts on the linear store.
func TestStoreIndexFailurePutsTheStoreBack(t *testing.T) {
	requireVolumeTools(t)
	testenv.Require(t, "chattr")
	image, mnt := appleVolume(t)
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, 3000)+` | xargs mkdir; chattr +i 00000000000000000000000000002000-p`)
	out := runStoreIndexThen(t, image, `echo ---; ls -A /nix; ls /nix/store | wc -l`)
	tail := out[strings.Index(out, "---"):]
	if !strings.Contains(out, "putting the store back") || !strings.Contains(out, "indexed=\n") ||
		strings.Contains(tail, ".wrapix-store-") || !strings.Contains(tail, "\n3000\n") {
		t.Fatalf("a failed rebuild:\n%s", out)
	}
	onVolume(t, image, mnt, `chattr -i store/00000000000000000000000000002000-p`)
	fsck(t, image)
}

// Too little room for the new directory: the rebuild is not started (the
// next start tries again), and says how much room it needs.
func TestStoreIndexWaitsForRoom(t *testing.T) {
	requireVolumeTools(t)
	image, mnt := appleVolume(t)
	// Fill the volume to the last few MiB (the fill file is then removed).
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, 3000)+` | xargs mkdir; cd ..
fallocate -l $(( $(df -k --output=avail . | tail -1) * 1024 - (64 << 10) )) fill`)
	out := runStoreIndexThen(t, image, `ls -A /nix; ls /nix/store | wc -l`)
	if !strings.Contains(out, "not indexed yet: it needs") || !strings.Contains(out, "indexed=\n") ||
		strings.Contains(out, ".wrapix-store-new") || !strings.Contains(out, "\n3000\n") {
		t.Fatalf("a full volume:\n%s", out)
	}
	onVolume(t, image, mnt, `rm fill`)
	if again := runStoreIndex(t, image); !strings.Contains(again, "indexed=1") {
		t.Fatalf("with room again:\n%s", again)
	}
}

// A stop (SIGTERM to the entrypoint) while the store is being moved ends
// the rebuild after the batch under way, synced, and the next start
// finishes it with every entry there.
func TestStoreIndexStopsOnTERM(t *testing.T) {
	requireVolumeTools(t)
	image, mnt := appleVolume(t)
	const n = 12000
	onVolume(t, image, mnt, `mkdir -m 1775 store; cd store; `+names(0, n)+` | xargs mkdir`)
	bin := busyboxApplets(t)
	script := storeIndexBlock(t) + "store_index\necho \"indexed=$store_indexed\"\n"
	cmd := exec.Command("unshare", "-m", "sh", "-ec", `mount -o loop "$IMG" /nix; exec env -i PATH="$BIN" "$BB" sh -c "$SCRIPT"`)
	cmd.Env = append(os.Environ(), "IMG="+image, "BIN="+bin, "BB="+testenv.DebianBusybox, "SCRIPT="+script)
	var out strings.Builder
	pr, pw, _ := os.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	lines := make(chan string)
	go func() {
		buf := make([]byte, 4096)
		for {
			k, err := pr.Read(buf)
			lines <- string(buf[:k])
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	signalled := false
	for l := range lines {
		out.WriteString(l)
		if !signalled && strings.Contains(out.String(), "indexing /nix/store (once;") {
			signalled = true
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	if err := cmd.Wait(); err != nil || !strings.Contains(out.String(), "stopped while indexing /nix/store; the next start resumes it") ||
		strings.Contains(out.String(), "indexed=") {
		t.Fatalf("a stop while indexing: %v\n%s", err, out.String())
	}
	split := onVolume(t, image, mnt, `ls -A; ls .wrapix-store-new | wc -l`)
	if !strings.Contains(split, ".wrapix-store-new") {
		t.Fatalf("nothing was moved before the stop:\n%s", split)
	}
	again := runStoreIndexThen(t, image, `ls /nix/store | wc -l; ls -A /nix`)
	if !strings.Contains(again, "indexing /nix/store (resuming)") || !strings.Contains(again, "indexed=1") ||
		!strings.Contains(again, fmt.Sprintf("\n%d\n", n)) || strings.Contains(again, ".wrapix-store-") && !strings.Contains(again, ".wrapix-store-indexed") {
		t.Fatalf("resumed after the stop:\n%s", again)
	}
	fsck(t, image)
}
