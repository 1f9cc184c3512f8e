// Package atomicfile writes files so that a reader (or a crash) never sees
// half of one: write a temporary file beside the target, sync, rename.
package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
)

// Write replaces path with data and mode. The mode is set on the temporary
// file before any byte is written, so a private key is never briefly readable.
func Write(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after a successful rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(name, path)
}

// WriteIfChanged writes only when the content or mode differs, and reports
// whether it wrote. Idempotent callers use it to keep mtimes stable.
func WriteIfChanged(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm() == mode.Perm() {
			return false, nil
		}
	}
	return true, Write(path, data, mode)
}
