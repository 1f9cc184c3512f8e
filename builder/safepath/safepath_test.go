package safepath

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files of other owners")
	}
	dir := t.TempDir() // root's, under the sticky /tmp
	os.Chmod(dir, 0o755)
	mine := filepath.Join(dir, "mine")
	os.MkdirAll(filepath.Join(mine, "sub"), 0o755)
	os.WriteFile(filepath.Join(mine, "sub", "prog"), []byte("#!/bin/sh\n"), 0o755)
	theirs := filepath.Join(dir, "theirs")
	os.MkdirAll(theirs, 0o755)
	os.Chown(theirs, 4343, 4343)
	os.Symlink(filepath.Join(mine, "sub"), filepath.Join(theirs, "link"))  // their link, to root's directory
	os.Symlink(filepath.Join(mine, "sub"), filepath.Join(dir, "rootlink")) // root's link, in root's directory
	os.Symlink("../theirs/link", filepath.Join(mine, "via"))               // root's link through their directory
	for _, tc := range []struct {
		path   string
		owners []int
		want   string // "" = passes
	}{
		{filepath.Join(mine, "sub", "prog"), []int{0}, ""},
		{filepath.Join(dir, "rootlink", "prog"), []int{0}, ""},
		{filepath.Join(theirs, "link", "prog"), []int{0}, "owned by uid 4343"},
		{filepath.Join(mine, "via", "prog"), []int{0}, "owned by uid 4343"},
		{filepath.Join(theirs, "link", "prog"), []int{4343, 0}, ""},
		{filepath.Join(mine, "sub", "absent", "deeper"), []int{0}, "no such file"},
		{"/tmp", []int{0}, "others may write"}, // sticky is fine only above the final component
	} {
		err := Check(tc.path, false, tc.owners...)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Check(%s, %v) = %v, want %q", tc.path, tc.owners, err, tc.want)
		}
	}
	if err := Check(filepath.Join(mine, "sub", "absent", "deeper"), true, 0); err != nil {
		t.Errorf("missing tail in root's directory: %v", err)
	}
	os.Chmod(filepath.Join(mine, "sub"), 0o775)
	if err := Check(filepath.Join(mine, "sub", "prog"), false, 0); err == nil || !strings.Contains(err.Error(), "mode 0775") {
		t.Errorf("group-writable directory: %v", err)
	}
}
