// Package agent is the macOS login agent that runs `wrapix-builder serve`
// for one user (docs/on-demand.md): a KeepAlive LaunchAgent in
// ~/Library/LaunchAgents, loaded into the user's gui/<uid> domain, where
// Apple's container runtime lives. launchd socket activation would need
// launch_activate_socket (C, libSystem), which the cgo-free CLI cannot call.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
)

// Label is the agent's launchd label; the file is <Label>.plist.
const Label = "org.wrapix.builder.serve"

// BundleID groups the agent under the app in System Settings ▸ Login Items.
const BundleID = "org.wrapix.builder"

// Path is the agent's plist under home.
func Path(home string) string {
	return filepath.Join(home, "Library", "LaunchAgents", Label+".plist")
}

// searchPath is the agent's PATH: launchd gives agents only
// /usr/bin:/bin:/usr/sbin:/sbin, but Apple's container CLI lives in
// /usr/local/bin and the user's Nix (for a first start's image build) in a
// Nix profile.
const searchPath = "/usr/local/bin:/opt/homebrew/bin:/nix/var/nix/profiles/default/bin:/run/current-system/sw/bin:/usr/bin:/bin:/usr/sbin:/sbin"

// Spec is what the agent runs.
type Spec struct {
	Program   string // the wrapix-builder CLI
	DataDir   string // passed explicitly: launchd does not give the agent the shell's XDG variables
	ConfigDir string
}

// ProgramFix is what to do about a program path CheckProgram refuses.
const ProgramFix = "move Wrapix Builder to Applications first, open it from there and run setup again"

// CheckProgram refuses a program path that is gone after a restart: a
// quarantined download runs from an App Translocation mount, and an app
// opened on its disk image lives at the top of /Volumes/<image> until the
// image is ejected (an app in a folder on an external disk is fine). The
// agent runs that path at every login.
func CheckProgram(path string) error {
	parts := strings.Split(path, "/")
	onImage := len(parts) > 3 && parts[0] == "" && parts[1] == "Volumes" && strings.HasSuffix(parts[3], ".app")
	if strings.Contains(path, "/AppTranslocation/") || onImage {
		return fmt.Errorf("%s runs from a place macOS removes later (a translocated download or the disk image), and the login agent runs it at every login", path)
	}
	return nil
}

// StoreDir is where Nix keeps packages (a variable for the tests).
var StoreDir = "/nix/store/"

// profileLinks are where a Nix profile puts the CLI for the user: nix
// profile's ~/.nix-profile (and its XDG form), nix-darwin's per-user and
// system profiles, the default profile. Each is a link that an upgrade moves
// to the new version, while the /nix/store path behind it is deleted by the
// next garbage collection.
func profileLinks(u User) []string {
	links := []string{
		filepath.Join(u.Home, ".nix-profile", "bin", "wrapix-builder"),
		filepath.Join(u.Home, ".local", "state", "nix", "profile", "bin", "wrapix-builder"),
	}
	if u.Name != "" {
		links = append(links, "/etc/profiles/per-user/"+u.Name+"/bin/wrapix-builder")
	}
	return append(links, "/run/current-system/sw/bin/wrapix-builder", "/nix/var/nix/profiles/default/bin/wrapix-builder")
}

// StableProgram is the path the agent should run for program (the running
// CLI): program itself unless it is in the Nix store; then a profile's link
// that leads to this very program (issue 17 point 6). A store program no
// profile links to (`nix run`, a build result) is refused with the fix.
func StableProgram(program string, u User) (string, error) {
	real, err := filepath.EvalSymlinks(program)
	if err != nil || !strings.HasPrefix(real, StoreDir) {
		return program, nil
	}
	for _, link := range profileLinks(u) {
		if r, err := filepath.EvalSymlinks(link); err == nil && r == real {
			return link, nil
		}
	}
	return "", fmt.Errorf("%s is in the Nix store, which the next upgrade and garbage collection delete, and no Nix profile of yours links to it (looked at %s)",
		real, strings.Join(profileLinks(u), ", "))
}

// StableProgramFix is what to do about a program StableProgram refuses.
const StableProgramFix = "install Wrapix Builder into your profile (`nix profile install github:wrapix/wrapix-builder`, or the nix-darwin module) and run setup with that one: `sudo ~/.nix-profile/bin/wrapix-builder setup`"

// Plist renders the agent. Every value is XML-escaped; control characters
// are refused (a plist string cannot carry them, and no real path has them).
func Plist(s Spec) (string, error) {
	if err := CheckProgram(s.Program); err != nil {
		return "", fmt.Errorf("%w: %s", err, ProgramFix)
	}
	args := []string{s.Program, "serve", "--data-dir", s.DataDir, "--config-dir", s.ConfigDir}
	for _, a := range append(args, s.DataDir) {
		if a == "" || strings.IndexFunc(a, unicode.IsControl) >= 0 {
			return "", fmt.Errorf("cannot put %q into a launchd agent: empty or with control characters", a)
		}
	}
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;").Replace
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<!-- Written by wrapix-builder setup, which removes it on undo (no double hyphen in an XML comment). -->
<plist version="1.0">
<dict>
  <key>Label</key>
  <string>` + Label + `</string>
  <key>ProgramArguments</key>
  <array>
`)
	for _, a := range args {
		b.WriteString("    <string>" + esc(a) + "</string>\n")
	}
	b.WriteString(`  </array>
  <key>EnvironmentVariables</key>
  <dict>
    <key>PATH</key>
    <string>` + searchPath + `</string>
  </dict>
  <key>RunAtLoad</key>
  <true/>
  <key>KeepAlive</key>
  <true/>
  <key>ProcessType</key>
  <string>Interactive</string>
  <key>AssociatedBundleIdentifiers</key>
  <array>
    <string>` + BundleID + `</string>
  </array>
  <key>StandardOutPath</key>
  <string>` + esc(filepath.Join(s.DataDir, "waker.log")) + `</string>
  <key>StandardErrorPath</key>
  <string>` + esc(filepath.Join(s.DataDir, "waker.log")) + `</string>
</dict>
</plist>
`)
	return b.String(), nil
}

// Runner runs a command (launchctl); tests and --root record instead.
type Runner func(argv []string) error

// User is whom the agent is for: setup runs as root through sudo and acts
// for the invoking user.
type User struct {
	Home     string
	UID, GID int
	Name     string // the login name (nix-darwin's /etc/profiles/per-user/<name>)
}

// NixDarwinLabel is the agent nix-darwin's services.wrapix-builder installs
// (launchd.user.agents.wrapix-builder, packaging/nix/module.nix).
const NixDarwinLabel = "org.nixos.wrapix-builder"

// ErrNixDarwinAgent: nix-darwin's module already runs serve for this user.
var ErrNixDarwinAgent = errors.New("nix-darwin's services.wrapix-builder already runs `wrapix-builder serve` at login (" + NixDarwinLabel + ")")

// ErrNoGUISession: the user has no gui/<uid> launchd domain (nobody is
// logged in to the desktop as them, e.g. setup over ssh), so the agent
// cannot be loaded: `launchctl bootstrap gui/<uid>` fails with "5:
// Input/output error". The user/<uid> domain is not a way out: Apple's
// container services follow the session that starts them (gui/<uid> under
// Aqua, user/<uid> under Background: apple/container
// scripts/ensure-container-stopped.sh), and a LaunchAgent is loaded into
// the gui domain at the next login anyway.
var ErrNoGUISession = errors.New("no desktop (GUI) login session")

// SessionFix is what to do about ErrNoGUISession.
const SessionFix = "log in to this Mac's desktop as that user (at the screen or through Screen Sharing), then run `sudo wrapix-builder setup` again (from a Terminal there, or over ssh while that session stays open)"

// CheckSession refuses, before anything is written, a user without a gui
// domain: launchctl cannot print gui/<uid> then. With nix-darwin's agent
// there, nothing will be loaded, and nothing is checked.
func CheckSession(u User, run Runner) error {
	if nixDarwinAgent(u.Home) {
		return nil
	}
	domain := "gui/" + strconv.Itoa(u.UID)
	if err := run([]string{"/bin/launchctl", "print", domain}); err != nil {
		return fmt.Errorf("%w for uid %d: the login agent cannot be loaded into %s (%v)", ErrNoGUISession, u.UID, domain, err)
	}
	return nil
}

// Install writes the agent (owned by the user) and (re)loads it into the
// user's gui domain, so the new program path takes effect now. When
// nix-darwin's agent is there, it installs nothing (ErrNixDarwinAgent): two
// serves would fight for the port at every login. Without a gui domain it
// writes nothing (ErrNoGUISession).
func Install(u User, s Spec, run Runner) error {
	text, err := Plist(s)
	if err != nil {
		return err
	}
	if nixDarwinAgent(u.Home) {
		return ErrNixDarwinAgent
	}
	if err := CheckSession(u, run); err != nil {
		return err
	}
	p := Path(u.Home)
	if err := asUser(u, text, "umask 022 && mkdir -p -- \"$1\" && tmp=$(mktemp \"$1/.agent.XXXXXX\") && "+
		"{ cat > \"$tmp\" && chmod 644 \"$tmp\" && mv -f -- \"$tmp\" \"$2\"; } || { rm -f -- \"$tmp\"; exit 1; }",
		filepath.Dir(p), p); err != nil {
		return fmt.Errorf("write %s as uid %d: %w", p, u.UID, err)
	}
	domain := "gui/" + strconv.Itoa(u.UID)
	_ = run([]string{"/bin/launchctl", "bootout", domain + "/" + Label}) // not loaded yet: fine
	// launchd releases the label only after the old serve has exited and it
	// has cleaned up (seconds; up to the job's 20 s exit timeout): until then
	// bootstrap fails with "5: Input/output error". Retry until it loads.
	deadline := time.Now().Add(bootstrapWait)
	for {
		err := run([]string{"/bin/launchctl", "bootstrap", domain, p})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load %s: %w", p, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// bootstrapWait bounds Install's wait for launchd to release the label:
// the job's exit timeout (20 s) plus launchd's cleanup.
const bootstrapWait = 30 * time.Second

// Uninstall unloads the agent and removes its file; a missing agent is fine.
func Uninstall(u User, run Runner) error {
	_ = run([]string{"/bin/launchctl", "bootout", "gui/" + strconv.Itoa(u.UID) + "/" + Label})
	p := Path(u.Home)
	if err := asUser(u, "", `rm -f -- "$1"`, p); err != nil {
		return fmt.Errorf("remove %s as uid %d: %w", p, u.UID, err)
	}
	return nil
}

// asUser runs a /bin/sh script with args ($1, $2…) and stdin as the user.
// Setup runs as root, and the home is the user's: ~/Library/LaunchAgents may
// be a link (to /etc/nix, /Library/LaunchDaemons) or be swapped for one while
// we work. Root writing or chowning there would hand root's files to the
// user; as the user, a link reaches only what the user could write anyway.
func asUser(u User, stdin, script string, args ...string) error {
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	cmd.Dir = "/" // root's working directory (e.g. /var/root under `sudo -i`) may be closed to the user
	if os.Geteuid() == 0 && u.UID != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Installed reports whether the agent file exists.
func Installed(home string) bool {
	_, err := os.Stat(Path(home))
	return err == nil
}

// InstallForCurrentUser installs the agent for the user running this
// process (the app's "Start at login"), loading it with launchctl.
func InstallForCurrentUser(s Spec) error {
	home, err := os.UserHomeDir()
	if err != nil {
		return err
	}
	u := User{Home: home, UID: os.Getuid(), GID: os.Getgid()}
	if cur, err := user.Current(); err == nil {
		u.Name = cur.Username
	}
	if s.Program, err = StableProgram(s.Program, u); err != nil {
		return fmt.Errorf("%w: %s", err, StableProgramFix)
	}
	return Ensure(u, s, launchctl)
}

// Ensure is Install, except that an agent already written with this very
// plist and loaded (`launchctl print` finds it) is left running: Install's
// bootout ends serve, and every build in flight through it with it — the
// app's Start at login must not cut a running build. Setup still reloads
// (Install), so that a setup after an update runs the new serve.
func Ensure(u User, s Spec, run Runner) error {
	text, err := Plist(s)
	if err != nil {
		return err
	}
	if cur, err := os.ReadFile(Path(u.Home)); err == nil && string(cur) == text && !nixDarwinAgent(u.Home) &&
		run([]string{"/bin/launchctl", "print", "gui/" + strconv.Itoa(u.UID) + "/" + Label}) == nil {
		return nil
	}
	return Install(u, s, run)
}

// nixDarwinAgent reports whether nix-darwin's agent for serve is installed.
func nixDarwinAgent(home string) bool {
	_, err := os.Lstat(filepath.Join(home, "Library", "LaunchAgents", NixDarwinLabel+".plist"))
	return err == nil
}

// launchctl runs /bin/launchctl with a deadline.
func launchctl(argv []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
