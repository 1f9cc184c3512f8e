//go:build linux

package main

import (
	"github.com/wrapix/wrapix-builder/internal/ext4vol"
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
//
// A journal is there only when the volume was created with one (journal=…,
// which the server reads from 0.12: VolumesService.swift).
func TestVolumeHasApplesFeatures(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the volume is loop-mounted")
	}
	for _, journal := range []string{"", "ordered"} {
		features := volumeFeatures(t, map[string]string{"journal": journal})
		for _, kind := range []string{"dir_index", "dir_nlink"} {
			if slices.Contains(features, kind) {
				t.Errorf("the volume has %s, which Apple's volumes lack: %v", kind, features)
			}
		}
		if got := slices.Contains(features, "has_journal"); got != (journal != "") {
			t.Errorf("journal option %q: has_journal is %v: %v", journal, got, features)
		}
		want := []string{"ext_attr", "sparse_super2", "filetype", "extent", "flex_bg", "large_file", "huge_file", "extra_isize"}
		if journal != "" {
			want = append(want, "has_journal")
		}
		features = slices.DeleteFunc(features, func(f string) bool { return f == "needs_recovery" }) // mounted with a journal
		if !slices.Equal(slices.Sorted(slices.Values(features)), slices.Sorted(slices.Values(want))) {
			t.Errorf("features %v, Apple's formatter sets %v", features, want)
		}
	}
}

// Apple's formatter leaves the directory hash seed, the default hash and the
// hash flags at zero ("kernel initialises htree hash seed at first mount",
// EXT4+Formatter.swift): what turning dir_index on later must cope with.
func TestVolumeHasNoHashSeed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the volume is loop-mounted")
	}
	image := volumeImage(t, nil)
	out, err := exec.Command("dumpe2fs", "-h", image).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v %s", err, out)
	}
	for _, field := range []string{"Directory Hash Seed:", "Default directory hash:", "Filesystem flags:"} {
		if strings.Contains(string(out), field) {
			t.Errorf("dumpe2fs shows %q: Apple's volumes leave it zero\n%s", field, out)
		}
	}
}

// volumeFeatures formats and mounts a stand-in volume with these options and
// returns its ext4 features.
func volumeFeatures(t *testing.T, options map[string]string) []string {
	image := volumeImage(t, options)
	// What the kernel then does (64998 subdirectories, each insert a linear
	// scan) takes long to show; the features it follows from are read here.
	features, err := ext4vol.ReadFeatures(image)
	if err != nil {
		t.Fatal(err)
	}
	return features
}

// volumeImage formats and mounts a stand-in volume with these options and
// returns its image file.
func volumeImage(t *testing.T, options map[string]string) string {
	dir := t.TempDir()
	v := &volume{Name: "t", Options: options, Path: filepath.Join(dir, "data"), Image: filepath.Join(dir, "volume.img")}
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
	return v.Image
}
