// Package safepath tells whether a path can be changed only by the people
// root acts for. Root must not follow a path another user could redirect:
// a program it runs, a directory whose files it copies or hands to a login
// agent.
package safepath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxLinks bounds the links followed, as the kernel's ELOOP does.
const maxLinks = 40

// Check resolves path one component at a time, following links itself, and
// requires every directory it passes, every link it follows and the final
// file or directory to belong to one of owners and to be writable by nobody
// else. A root-owned sticky directory (/tmp, /nix/store) is fine above the
// final component: others cannot rename or replace what they do not own in
// it. With missingOK, a path whose tail does not exist yet passes when the
// deepest existing directory passes (only its owners can create the rest).
func Check(path string, missingOK bool, owners ...int) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("%s is not an absolute path", path)
	}
	todo := split(path)
	cur := "/"
	if err := checkOne(cur, len(todo) == 0, owners); err != nil {
		return err
	}
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		if name == ".." {
			cur = filepath.Dir(cur) // cur is already resolved: its parent is checked
			continue
		}
		next := filepath.Join(cur, name)
		fi, err := os.Lstat(next)
		if missingOK && errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			if err := owned(next, fi, owners); err != nil {
				return err
			}
			if links++; links > maxLinks {
				return fmt.Errorf("%s: too many symbolic links", path)
			}
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(split(target), todo...)
			continue
		}
		if err := checkOne(next, len(todo) == 0, owners); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

// CheckProgram is Check for a program root runs: the file must be root's,
// with every directory and link on its path root's and writable by nobody
// else, and it must not sit directly in a sticky directory others may
// write to (/tmp), nor be a hard link in any sticky directory: anyone can
// hard-link a root-owned file into such a place (macOS has no
// protected_hardlinks), and the sticky bit keeps only renames out (issue 16).
func CheckProgram(path string) error {
	if err := Check(path, false, 0); err != nil {
		return err
	}
	resolved, err := filepath.EvalSymlinks(path) // every link on it is root's: Check passed
	if err != nil {
		return err
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return err
	}
	dir, err := os.Lstat(filepath.Dir(resolved))
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell how many links %s has", resolved)
	}
	if dir.Mode()&os.ModeSticky != 0 {
		if dir.Mode().Perm()&0o002 != 0 {
			return fmt.Errorf("%s is directly in %s, which everyone may write to", resolved, filepath.Dir(resolved))
		}
		if !fi.IsDir() && st.Nlink > 1 {
			return fmt.Errorf("%s has %d hard links in the sticky directory %s", resolved, st.Nlink, filepath.Dir(resolved))
		}
	}
	return nil
}

func split(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

func checkOne(p string, final bool, owners []int) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if err := owned(p, fi, owners); err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	perm := fi.Mode().Perm()
	sticky := fi.IsDir() && fi.Mode()&os.ModeSticky != 0 && st.Uid == 0
	if perm&0o022 != 0 && (final || !sticky) {
		return fmt.Errorf("others may write to %s (mode %04o)", p, perm)
	}
	if !final && !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", p)
	}
	return nil
}

func owned(p string, fi fs.FileInfo, owners []int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("cannot tell who owns %s", p)
	}
	if !slices.Contains(owners, int(st.Uid)) {
		return fmt.Errorf("%s is owned by uid %d", p, st.Uid)
	}
	return nil
}
