package setup

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

// treeDirs are the directories inside a --root tree that setup reads or
// writes in (journalDirs, and where Observe looks for Determinate's daemon).
var treeDirs = []string{"/etc", "/etc/nix", "/etc/ssh", "/etc/ssh/ssh_config.d", "/Library", "/Library/LaunchDaemons"}

// CheckTree is for root given `--root DIR` (issue 16): setup writes through
// filepath.Join(root, …) and trusts the journal it finds there, so the tree
// must be one only root can change. DIR and every directory above it must be
// root's, not a link, and writable by nobody else (a root-owned sticky
// directory such as /tmp is fine above DIR: others cannot replace what root
// made in it); every directory setup uses inside the tree, where it exists,
// must be root's, not a link, writable by nobody else.
func CheckTree(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot resolve --root "+root, "")
	}
	var above []string
	for d := abs; ; d = filepath.Dir(d) {
		above = append([]string{d}, above...)
		if d == filepath.Dir(d) {
			break
		}
	}
	for _, d := range above {
		if err := rootOnlyDir(d, d != abs, false); err != nil {
			return err
		}
	}
	for _, d := range treeDirs {
		if err := rootOnlyDir(filepath.Join(abs, d), false, true); err != nil {
			return err
		}
	}
	return nil
}

const treeFix = "as root, --root takes only a tree root owns that nobody else may change (make one with `sudo mkdir`); run setup without --root to set up this Mac"

func rootOnlyDir(d string, stickyOK, mayBeAbsent bool) error {
	fi, err := os.Lstat(d)
	if mayBeAbsent && os.IsNotExist(err) {
		return nil // setup creates it, as root
	}
	if err != nil {
		return problem.Wrap(problem.Setup, err, "cannot check --root directory "+d, treeFix)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		return problem.Newf(problem.Setup, treeFix, "refusing --root: %s is a symbolic link", d)
	case !fi.IsDir():
		return problem.Newf(problem.Setup, treeFix, "refusing --root: %s is not a directory", d)
	case !ok:
		return problem.Newf(problem.Setup, treeFix, "refusing --root: cannot tell who owns %s", d)
	case st.Uid != 0:
		return problem.Newf(problem.Setup, treeFix, "refusing --root: %s is owned by uid %d, not root", d, st.Uid)
	case perm&0o022 != 0 && !(stickyOK && fi.Mode()&os.ModeSticky != 0):
		return problem.Newf(problem.Setup, treeFix, "refusing --root: others may write to %s (mode %04o)", d, perm)
	}
	return nil
}
