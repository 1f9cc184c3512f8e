//go:build linux

package image

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/ext4vol"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// BenchmarkStoreDirectory measures /nix/store on three volumes, built in the
// same run: "native", ext4 as mke2fs makes it (dir_index, dir_nlink); "ours",
// Apple's volume after the entrypoint's store-index migration (its store
// grown by an older release to 60000 paths, migrated, then grown to 100000);
// "apple", Apple's volume as it was (no dir_index: it holds at most 64998
// directories, so 60000). Per volume: a lookup (one hit and one miss, warm),
// a store path created and deleted, and `nix copy` of 500 paths into a store
// on it. Goal: ours ≤ 1.1× native. Run as root (loop mounts): make bench.
func BenchmarkStoreDirectory(b *testing.B) {
	testenv.RequireRoot(b)
	testenv.Require(b, "unshare", "mkfs.ext4", "debugfs", "nix", "nix-store")
	if _, err := os.Stat(testenv.DebianBusybox); err != nil {
		b.Skipf("no %s (make deps)", testenv.DebianBusybox)
	}
	const full, appleMax = 100000, 60000
	dir := b.TempDir()
	mount := func(image, kind string) string {
		mnt := filepath.Join(dir, kind, "nix")
		os.MkdirAll(mnt, 0o755)
		if out, err := exec.Command("mount", "-o", "loop", image, mnt).CombinedOutput(); err != nil {
			b.Fatalf("mount %s: %v %s", kind, err, out)
		}
		b.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
		return mnt
	}
	sparse := func(name string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, nil, 0o644)
		os.Truncate(p, 16<<30)
		return p
	}
	fill := func(store string, from, to int) time.Duration {
		t0 := time.Now()
		for i := from; i < to; i++ {
			if err := os.Mkdir(filepath.Join(store, storeName(i)), 0o555); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}

	// native: 100000 paths.
	nativeImg := sparse("native.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", nativeImg).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	native := mount(nativeImg, "native")
	os.Mkdir(filepath.Join(native, "store"), 0o1775)
	nativeFill := fill(filepath.Join(native, "store"), 0, full)

	// native with the legacy hash: what a zero s_def_hash_version (Apple's
	// formatter) makes the kernel use for every directory indexed on the
	// volume; switching it takes a remount, which the builder cannot do.
	legacyImg := sparse("legacy.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", legacyImg).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	if out, err := exec.Command("tune2fs", "-E", "hash_alg=legacy", legacyImg).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	legacy := mount(legacyImg, "legacy")
	os.Mkdir(filepath.Join(legacy, "store"), 0o1775)
	fill(filepath.Join(legacy, "store"), 0, full)

	// apple: 60000 paths; ours: a copy of it, migrated, then 100000.
	appleImg := sparse("apple.img")
	if err := ext4vol.Format(appleImg, true, false); err != nil {
		b.Fatal(err)
	}
	apple := mount(appleImg, "apple")
	os.Mkdir(filepath.Join(apple, "store"), 0o1775)
	appleFill := fill(filepath.Join(apple, "store"), 0, appleMax)
	syscall.Unmount(apple, 0)
	oursImg := filepath.Join(dir, "ours.img")
	if out, err := exec.Command("cp", "--sparse=always", appleImg, oursImg).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	t0 := time.Now()
	out := runStoreIndex(b, oursImg)
	migration := time.Since(t0)
	if !strings.Contains(out, "indexed=1") {
		b.Fatalf("migration: %s", out)
	}
	apple = mount(appleImg, "apple")
	ours := mount(oursImg, "ours")
	oursFill := fill(filepath.Join(ours, "store"), appleMax, full)

	// The 500 paths to copy in, in a store of their own.
	src := filepath.Join(dir, "src")
	var paths []string
	for i := 0; i < 500; i++ {
		p := filepath.Join(dir, "in", fmt.Sprintf("dep-%03d", i))
		os.MkdirAll(p, 0o755)
		os.WriteFile(filepath.Join(p, "file"), []byte(strings.Repeat("x", 200+i)), 0o644)
		paths = append(paths, p)
	}
	added, err := exec.Command("nix-store", append([]string{"--store", "local?root=" + src, "--add"}, paths...)...).Output()
	if err != nil {
		b.Fatalf("nix-store --add: %v", err)
	}
	closure := strings.Fields(string(added))

	type result struct{ lookup, create, copy time.Duration }
	measure := func(kind, mnt string, n int) result {
		store := filepath.Join(mnt, "store")
		rng := rand.New(rand.NewPCG(1, 2))
		const lookups, creates = 20000, 2000
		for i := 0; i < 1000; i++ { // warm
			os.Lstat(filepath.Join(store, storeName(rng.IntN(n))))
		}
		t0 := time.Now()
		for i := 0; i < lookups; i++ {
			if _, err := os.Lstat(filepath.Join(store, storeName(rng.IntN(n)))); err != nil {
				b.Fatal(err)
			}
			os.Lstat(filepath.Join(store, storeName(n+1+rng.IntN(n)))) // a miss
		}
		lookup := time.Since(t0) / lookups
		t0 = time.Now()
		for i := 0; i < creates; i++ {
			p := filepath.Join(store, storeName(2*n+i))
			if err := os.Mkdir(p, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.Remove(p); err != nil {
				b.Fatal(err)
			}
		}
		create := time.Since(t0) / creates
		t0 = time.Now()
		cmd := exec.Command("nix", append([]string{"--extra-experimental-features", "nix-command", "copy", "--no-check-sigs",
			"--from", "local?root=" + src, "--to", "local?root=" + filepath.Dir(mnt)}, closure...)...)
		cmd.Env = append(os.Environ(), "NIX_CONFIG=build-users-group =")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("nix copy to %s: %v %s", kind, err, out)
		}
		return result{lookup, create, time.Since(t0)}
	}
	var nat, leg, our, app result
	for i := 0; i < b.N; i++ {
		nat, leg = measure("native", native, full), measure("legacy", legacy, full)
		our, app = measure("ours", ours, full), measure("apple", apple, appleMax)
	}
	ratio := func(a, n time.Duration) string { return fmt.Sprintf("%.2f×", float64(a)/float64(n)) }
	b.ReportMetric(float64(our.lookup)/float64(nat.lookup), "ours/native-lookup")
	b.ReportMetric(float64(our.copy)/float64(nat.copy), "ours/native-copy500")
	b.Logf("\n| /nix/store | native ext4 (%d paths) | native, legacy hash | ours (%d, migrated) | Apple's today (%d) |\n"+
		"|---|---|---|---|---|\n"+
		"| lookup, hit + miss, warm | %v | %v (%s) | %v (%s) | %v (%s) |\n"+
		"| create + delete a path | %v | %v (%s) | %v (%s) | %v (%s) |\n"+
		"| nix copy of 500 paths | %v | %v (%s) | %v (%s) | %v (%s) |\n"+
		"| filling it (setup) | %v | | %v (+ migration of %d: %v) | %v |",
		full, full, appleMax,
		nat.lookup, leg.lookup, ratio(leg.lookup, nat.lookup), our.lookup, ratio(our.lookup, nat.lookup), app.lookup, ratio(app.lookup, nat.lookup),
		nat.create, leg.create, ratio(leg.create, nat.create), our.create, ratio(our.create, nat.create), app.create, ratio(app.create, nat.create),
		nat.copy.Round(time.Millisecond), leg.copy.Round(time.Millisecond), ratio(leg.copy, nat.copy), our.copy.Round(time.Millisecond), ratio(our.copy, nat.copy), app.copy.Round(time.Millisecond), ratio(app.copy, nat.copy),
		nativeFill.Round(time.Millisecond), oursFill.Round(time.Millisecond), appleMax, migration.Round(time.Millisecond), appleFill.Round(time.Millisecond))
}

// storeName is a store-path-like name: 32 characters of Nix's base32 from
// a hash of i (spread as real store hashes are), then a name.
func storeName(i int) string {
	const base32 = "0123456789abcdfghijklmnpqrsvwxyz"
	h := sha256.Sum256([]byte(strconv.Itoa(i)))
	name := make([]byte, 0, 40)
	for _, c := range h[:32] {
		name = append(name, base32[c%32])
	}
	return string(name) + "-path-" + strconv.Itoa(i%100)
}
