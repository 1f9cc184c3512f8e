//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A named volume is formatted by containerization's own EXT4.Formatter
// (container's VolumesService.swift createVolumeImage), which sets no
// dir_index and no dir_nlink (EXT4+Formatter.swift, containerization 0.12.1
// … 0.40.1: featureCompat = sparse_super2 | ext_attr). Linux then refuses a
// directory's 64999th subdirectory (EMLINK): /nix/store on the builder's
// volume holds at most 64998 directory store paths. The stand-in's volume
// must refuse it too.
func TestVolumeHasApplesDirectoryLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the volume is loop-mounted")
	}
	dir := t.TempDir()
	v := &volume{Name: "t", Options: map[string]string{}, Path: filepath.Join(dir, "data"), Image: filepath.Join(dir, "volume.img")}
	if err := os.Mkdir(v.Path, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(v.Image)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(4 << 30)
	f.Close()
	if err := mountVolume(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountVolume(v) })

	// What the kernel then does (64998 subdirectories, each insert a linear
	// scan) takes long to show; the features it follows from are read here.
	out, err := exec.Command("dumpe2fs", "-h", v.Image).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "Filesystem features:") {
			continue
		}
		for _, kind := range []string{"dir_index", "dir_nlink"} {
			if slices.Contains(strings.Fields(line), kind) {
				t.Errorf("the volume has %s, which Apple's volumes lack: %s", kind, line)
			}
		}
		return
	}
	t.Fatalf("no features in dumpe2fs's output: %s", out)
}
