// Package platform is what the app needs from the desktop, behind small
// interfaces with a darwin and a Linux implementation each: notifications,
// the clipboard, the admin prompt for setup, a terminal, start at login.
package platform

import (
	"strings"

	"github.com/wrapix/wrapix-builder/builder/shellquote"
)

// Notifier shows a desktop notification.
type Notifier interface {
	Notify(title, body string) error
}

// Clipboard puts text on the clipboard.
type Clipboard interface{ Copy(text string) error }

// Admin runs a command with administrator rights after asking the user.
type Admin interface{ Run(argv []string) error }

// Terminal opens a terminal window running a command.
type Terminal interface{ Open(argv []string) error }

// LoginItem starts the app when the user logs in.
type LoginItem interface {
	Enabled() bool
	Set(on bool) error
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

// CommandFile is a .command script for Terminal (opened with `open -a
// Terminal`, which needs no Automation permission): argv shell-quoted.
func CommandFile(argv []string) string {
	return "#!/bin/sh\nexec " + shellquote.Join(argv) + "\n"
}

// DesktopExec renders argv for the Exec key of an XDG .desktop file: every
// argument double-quoted with ", `, $ and \ escaped (Desktop Entry spec).
func DesktopExec(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = `"` + strings.NewReplacer(`\`, `\\\\`, `"`, `\\"`, "`", "\\\\`", "$", `\\$`).Replace(a) + `"`
	}
	return strings.Join(q, " ")
}
