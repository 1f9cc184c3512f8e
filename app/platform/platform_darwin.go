package platform

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// New returns the macOS implementations. Everything here is cgo-free and
// runs Apple's own tools: osascript (admin prompt, notification fallback),
// open (Terminal), pbcopy. Native notifications, when running from the app
// bundle, replace the notifier (notify_darwin_cgo.go); start at login is
// SMAppService (login_darwin_cgo.go).
func New(self string) Platform {
	return Platform{Notifier: nativeOrScriptNotifier(), Clipboard: pbcopy{}, Admin: osascriptAdmin{}, Terminal: terminalApp{}, LoginItem: newLoginItem()}
}

func osascript(ctx context.Context, args []string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "/usr/bin/osascript", args...)
	cmd.Stderr = &stderr
	cmd.WaitDelay = 2 * time.Second // a command left running as root must not hold us
	err := cmd.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return OsascriptError(err, stderr.String())
}

type scriptNotifier struct{}

func (scriptNotifier) Notify(title, body string) error {
	return osascript(context.Background(), NotificationArgs(title, body))
}

type pbcopy struct{}

// Copy runs pbcopy with a UTF-8 locale: a Finder-launched app has none, and
// pbcopy would transcode as MacRoman (macos-apis.md §3.2).
func (pbcopy) Copy(text string) error {
	cmd := exec.Command("/usr/bin/pbcopy")
	cmd.Env = append(os.Environ(), "LC_ALL=", "LC_CTYPE=UTF-8")
	cmd.Stdin = strings.NewReader(text)
	return cmd.Run()
}

type osascriptAdmin struct{}

// Run shows macOS's administrator prompt and runs argv as root. osascript
// runs it through a setuid-root helper we cannot signal: runAdmin's
// lifeline stops the root command; killing osascript's process group
// withdraws a prompt nobody answered.
func (osascriptAdmin) Run(ctx context.Context, argv []string) error {
	return runAdmin(ctx, argv, func(argv []string) *exec.Cmd { return exec.Command("/usr/bin/osascript", AdminArgs(argv)...) },
		func(err error, out string) error { return OsascriptError(err, out) })
}

type terminalApp struct{}

// Open writes the action's .command file and opens it with Terminal.
func (terminalApp) Open(action string, argv []string) error {
	home, _ := os.UserHomeDir()
	f, err := WriteCommandFile(filepath.Join(home, "Library", "Application Support", "wrapix"), action, argv)
	if err != nil {
		return err
	}
	return exec.Command("/usr/bin/open", "-a", "Terminal", f).Run()
}
