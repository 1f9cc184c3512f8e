// Package platform is what the app needs from the desktop, behind small
// interfaces with a darwin and a Linux implementation each: notifications,
// the clipboard, the admin prompt for setup, a terminal, start at login.
package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/shellquote"
)

// Notifier shows a desktop notification.
type Notifier interface {
	Notify(title, body string) error
}

// ErrNotificationsDenied: the user chose "Don't Allow" for the app's
// notifications; the app shows none (no other way around their choice).
var ErrNotificationsDenied = errors.New("notifications are off for Wrapix Builder (System Settings ▸ Notifications ▸ Wrapix Builder turns them on)")

// ErrNotificationsFailed: macOS refused the app's notifications without
// asking the user (e.g. a bundle whose signature does not bind Info.plist).
var ErrNotificationsFailed = errors.New("macOS refused notifications to Wrapix Builder")

// Clipboard puts text on the clipboard.
type Clipboard interface{ Copy(text string) error }

// Admin runs a command with administrator rights after asking the user.
// A prompt the user dismisses is ErrCancelled; one left unanswered for
// AdminTimeout is ended (the error says so). The command must accept
// lifeline.Flag (`wrapix-builder setup` does) and stop when its lifeline
// closes: on ctx's end (the app quits) it is told to stop.
type Admin interface {
	Run(ctx context.Context, argv []string) error
}

// ErrCancelled: the user dismissed the administrator prompt. Not a failure.
var ErrCancelled = errors.New("cancelled by the user")

// AdminTimeout bounds the administrator prompt: once the password is
// typed the command runs to its end (runAdmin).
var AdminTimeout = 5 * time.Minute

// adminTimedOut is the error for a prompt nobody answered.
func adminTimedOut() error {
	return fmt.Errorf("the administrator prompt was not answered within %s; choose Run setup… again", AdminTimeout)
}

// Terminal opens a terminal window running a command; action names it
// ("ssh", "logs"): each action has its own script, so two clicks in a row
// never run the same one.
type Terminal interface {
	Open(action string, argv []string) error
}

// LoginItem starts the app when the user logs in, and reports the real
// state: what the system will do at the next login, not what we last asked.
type LoginItem interface {
	State() LoginState
	Set(on bool) error
}

// LoginState is start at login as the system sees it.
type LoginState struct {
	On      bool   // the app will start at login
	Pending bool   // registered, but the user must allow it in System Settings (macOS)
	Problem string // why start at login cannot be used here ("" when it can)
}

// Platform bundles the implementations for this OS.
type Platform struct {
	Notifier  Notifier
	Clipboard Clipboard
	Admin     Admin
	Terminal  Terminal
	LoginItem LoginItem
}

// AdminPrompt is the text of macOS's administrator prompt for setup.
const AdminPrompt = "Wrapix Builder needs administrator rights to let your Mac's Nix use the builder."

// AdminArgs are osascript's arguments for running argv as root after the
// admin prompt. The script is fixed text; the command line arrives as an
// argument (`item 1 of argv`), so nothing is built into AppleScript source.
// The command line itself is argv shell-quoted word by word: no path —
// spaces, quotes, $(…), backslashes, unicode — can break out of it.
func AdminArgs(argv []string) []string {
	return []string{
		"-e", "on run argv",
		"-e", "do shell script (item 1 of argv) with prompt (item 2 of argv) with administrator privileges without altering line endings",
		"-e", "end run",
		shellquote.Join(argv), AdminPrompt,
	}
}

// NotificationArgs are osascript's arguments for the notification fallback
// (title and body as arguments, never script text).
func NotificationArgs(title, body string) []string {
	return []string{
		"-e", "on run argv",
		"-e", "display notification (item 2 of argv) with title (item 1 of argv)",
		"-e", "end run",
		title, body,
	}
}

// OsascriptError classifies osascript's outcome. A dismissed prompt makes
// `do shell script` fail with AppleScript's userCanceledErr: osascript exits
// 1 printing "execution error: User canceled. (-128)"; any other failure —
// the shell command's own exit status included — ends in another "(N)".
func OsascriptError(err error, stderr string) error {
	if err == nil {
		return nil
	}
	if strings.Contains(stderr, "(-128)") {
		return ErrCancelled
	}
	return fmt.Errorf("osascript: %w: %s", err, strings.TrimSpace(stderr))
}

// WriteCommandFile writes dir/wrapix-builder-<action>.command (mode 0700)
// for argv and returns its path.
func WriteCommandFile(dir, action string, argv []string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("terminal script: %w", err)
	}
	f := filepath.Join(dir, "wrapix-builder-"+action+".command")
	if err := os.WriteFile(f, []byte(CommandFile(argv)), 0o700); err != nil {
		return "", fmt.Errorf("terminal script: %w", err)
	}
	return f, nil
}

// CommandFile is a .command script for Terminal (opened with `open -a
// Terminal`, which needs no Automation permission): argv shell-quoted.
func CommandFile(argv []string) string {
	return "#!/bin/sh\nexec " + shellquote.Join(argv) + "\n"
}

// DesktopExec renders argv for the Exec key of an XDG .desktop file: every
// argument double-quoted with ", `, $ and \ escaped, and % doubled (a
// literal %; "%f" in a path would be a field code) (Desktop Entry spec).
func DesktopExec(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = `"` + strings.NewReplacer(`\`, `\\\\`, `"`, `\\"`, "`", "\\\\`", "$", `\\$`, "%", "%%").Replace(a) + `"`
	}
	return strings.Join(q, " ")
}
