// Package toolpath finds the programs we run on the Mac that are not in
// /usr/bin: Apple's `container` CLI and Nix. Apps started from Finder or
// launchd get PATH=/usr/bin:/bin:/usr/sbin:/sbin, while Apple's installer puts
// `container` in /usr/local/bin (apple/container Makefile: pkgbuild
// --install-location /usr/local) and Nix lives in its profiles. So a name is
// looked up on $PATH first, then in a fixed list of well-known places.
package toolpath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/safepath"
)

// Where a program was found.
const (
	FromOverride  = "set by container-cli in config.toml"
	FromPATH      = "found on $PATH"
	FromWellKnown = "found in a well-known place (not on $PATH)"
)

// Tool is a program we may run and where to look for it besides $PATH.
type Tool struct {
	Name string
	// Places are directories, tried in order after $PATH; "~" is $HOME and
	// "$USER" the user name.
	Places []string
}

// Container is Apple's container CLI: the .pkg installs /usr/local/bin;
// Homebrew's formula installs into its prefix.
var Container = Tool{Name: "container", Places: []string{"/usr/local/bin", "/opt/homebrew/bin"}}

// Nix: the multi-user profile (the official and Determinate installers), the
// nix-darwin system profile, the user's profile (classic and XDG locations)
// and nix-darwin's per-user packages (home-manager's useUserPackages).
var Nix = Tool{Name: "nix", Places: []string{
	"/nix/var/nix/profiles/default/bin",
	"/run/current-system/sw/bin",
	"~/.nix-profile/bin",
	"~/.local/state/nix/profile/bin",
	"/etc/profiles/per-user/$USER/bin",
}}

// Systemctl reloads nix-daemon on Linux. Root runs it, so it is looked for
// only in these root-owned places, never on the caller's $PATH (FindFixed).
var Systemctl = Tool{Name: "systemctl", Places: []string{"/usr/bin", "/bin", "/run/current-system/sw/bin"}}

// Found is a resolved program.
type Found struct {
	Path   string // absolute
	Source string // FromOverride, FromPATH or FromWellKnown
}

// NotFoundError lists everywhere a program was looked for.
type NotFoundError struct {
	Name    string
	PATH    string
	Looked  []string // the well-known places, expanded
	Refused []string // as root: programs passed over, and why
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("`%s` was not found on $PATH (%s) nor in %s", e.Name, e.PATH, strings.Join(e.Looked, ", "))
	if len(e.Refused) > 0 {
		msg += "; as root, programs only root can change are run, not " + strings.Join(e.Refused, ", ")
	}
	return msg
}

// Find resolves the tool: on $PATH, then in its well-known places. A
// directory or a file without an execute bit does not count. As root, a
// program another user could change or redirect (a directory or link on its
// path that is not root's, or that others may write to: the user's $PATH or
// ~/.nix-profile under sudo) does not count either (issue 16).
func (t Tool) Find() (Found, error) {
	var refused []string
	usable := func(p string) bool {
		if Executable(p) != nil {
			return false
		}
		if os.Geteuid() == 0 {
			if err := safepath.CheckProgram(p); err != nil {
				refused = append(refused, fmt.Sprintf("%s (%v)", p, err))
				return false
			}
		}
		return true
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		// Relative entries are skipped, as exec.LookPath refuses them (ErrDot).
		if p := filepath.Join(dir, t.Name); filepath.IsAbs(dir) && usable(p) {
			return Found{Path: p, Source: FromPATH}, nil
		}
	}
	looked := t.places()
	for _, dir := range looked {
		if p := filepath.Join(dir, t.Name); usable(p) {
			return Found{Path: p, Source: FromWellKnown}, nil
		}
	}
	return Found{}, &NotFoundError{Name: t.Name, PATH: os.Getenv("PATH"), Looked: looked, Refused: refused}
}

// FindFixed resolves a program root runs in the tool's fixed places only
// ("~" and "$USER" entries are skipped), never on $PATH, and only one only
// root can change (safepath.CheckProgram), whoever runs us.
func (t Tool) FindFixed() (Found, error) {
	var looked, refused []string
	for _, dir := range t.Places {
		if !filepath.IsAbs(dir) || strings.Contains(dir, "$") {
			continue
		}
		looked = append(looked, dir)
		p := filepath.Join(dir, t.Name)
		if Executable(p) != nil {
			continue
		}
		if err := safepath.CheckProgram(p); err != nil {
			refused = append(refused, fmt.Sprintf("%s (%v)", p, err))
			continue
		}
		return Found{Path: p, Source: FromWellKnown}, nil
	}
	return Found{}, &NotFoundError{Name: t.Name, PATH: "not searched", Looked: looked, Refused: refused}
}

func (t Tool) places() []string {
	home, _ := os.UserHomeDir()
	user := os.Getenv("USER")
	var out []string
	for _, p := range t.Places {
		if strings.HasPrefix(p, "~/") {
			if home == "" {
				continue
			}
			p = filepath.Join(home, p[2:])
		}
		if strings.Contains(p, "$USER") {
			if user == "" {
				continue
			}
			p = strings.ReplaceAll(p, "$USER", user)
		}
		out = append(out, p)
	}
	return out
}

// Executable checks that p is a regular file someone may execute.
func Executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return errors.New("not executable")
	}
	return nil
}
