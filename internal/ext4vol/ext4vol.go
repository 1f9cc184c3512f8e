// Package ext4vol formats an ext4 image as Apple's runtime formats a named
// volume (containerization EXT4+Formatter.swift), for the stand-in and the
// tests: exactly its features — no dir_index, no dir_nlink, no
// metadata_csum, no 64bit, no resize_inode — and s_hash_seed,
// s_def_hash_version and s_flags left at zero ("kernel initialises htree
// hash seed at first mount", which it does not: a zero seed stays zero).
// Linux-only test infrastructure; it runs e2fsprogs.
package ext4vol

import (
	"fmt"
	"os/exec"
	"strings"
)

// Features are the ext4 features of Apple's volumes (without a journal).
const Features = "ext_attr,sparse_super2,filetype,extent,flex_bg,large_file,huge_file,extra_isize"

// Format makes image (an existing, empty or sparse file) an ext4 filesystem
// like Apple's volume; journal adds one (journal=… from container 0.12),
// inlineData the feature containerization 0.2.0–0.16.0 set (container
// before 0.8).
func Format(image string, journal, inlineData bool) error {
	features := "none," + Features
	if journal {
		features += ",has_journal"
	}
	if inlineData {
		features += ",inline_data"
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", "-O", features,
		"-E", "lazy_itable_init=1,lazy_journal_init=1", image).CombinedOutput(); err != nil {
		return fmt.Errorf("mkfs.ext4 (e2fsprogs): %v %s", err, out)
	}
	zero := exec.Command("debugfs", "-w", "-f", "-", image)
	zero.Stdin = strings.NewReader("ssv hash_seed null\nssv def_hash_version legacy\nssv flags 0\n")
	if out, err := zero.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs (e2fsprogs): %v %s", err, out)
	}
	return nil
}

// ReadFeatures is the filesystem's feature list as dumpe2fs shows it.
func ReadFeatures(image string) ([]string, error) {
	out, err := exec.Command("dumpe2fs", "-h", image).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f, ok := strings.CutPrefix(line, "Filesystem features:"); ok {
			return strings.Fields(f), nil
		}
	}
	return nil, fmt.Errorf("no features in dumpe2fs's output: %s", out)
}
