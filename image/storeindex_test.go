//go:build linux

package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/internal/ext4vol"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// storeIndexBlock is the entrypoint's store-index block, with what it uses
// of the rest of the entrypoint.
func storeIndexBlock(t testing.TB) string {
	return `log() { echo "wrapix-builder: $*"; }
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
	if err := ext4vol.Format(image, true); err != nil {
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
