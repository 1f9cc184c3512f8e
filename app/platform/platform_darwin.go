package platform

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// New returns the macOS implementations. Everything here is cgo-free and
// runs Apple's own tools: osascript (admin prompt, Terminal, notification
// fallback), pbcopy, and a LaunchAgent for start at login. Native
// notifications, when running from the app bundle, replace the notifier
// (notify_darwin_cgo.go).
func New(self string) Platform {
	return Platform{Notifier: nativeOrScriptNotifier(), Clipboard: pbcopy{}, Admin: osascriptAdmin{}, Terminal: terminalApp{}, LoginItem: launchAgent{self: self}}
}

func osascript(args []string) error {
	out, err := exec.Command("/usr/bin/osascript", args...).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "(-128)") {
			return fmt.Errorf("cancelled")
		}
		return fmt.Errorf("osascript: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

type scriptNotifier struct{}

func (scriptNotifier) Notify(title, body string) error {
	return osascript(NotificationArgs(title, body))
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

// Run shows macOS's administrator prompt and runs argv as root.
func (osascriptAdmin) Run(argv []string) error { return osascript(AdminArgs(argv)) }

type terminalApp struct{}

// Open writes a .command file and opens it with Terminal.
func (terminalApp) Open(argv []string) error {
	home, _ := os.UserHomeDir()
	dir := filepath.Join(home, "Library", "Application Support", "wrapix")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f := filepath.Join(dir, "wrapix-builder.command")
	if err := os.WriteFile(f, []byte(CommandFile(argv)), 0o700); err != nil {
		return err
	}
	return exec.Command("/usr/bin/open", "-a", "Terminal", f).Run()
}

const agentLabel = "org.wrapix.builder"

type launchAgent struct{ self string }

func (a launchAgent) file() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "Library", "LaunchAgents", agentLabel+".plist")
}

func (a launchAgent) Enabled() bool {
	_, err := os.Stat(a.file())
	return err == nil
}

// Set writes or removes a LaunchAgent that opens the app at login.
func (a launchAgent) Set(on bool) error {
	if !on {
		err := os.Remove(a.file())
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.file()), 0o755); err != nil {
		return err
	}
	return os.WriteFile(a.file(), []byte(LaunchAgentPlist(agentLabel, []string{a.self})), 0o644)
}
