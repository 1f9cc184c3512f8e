package platform

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/godbus/dbus/v5"
)

// New returns the Linux implementations: freedesktop notifications over
// D-Bus, wl-copy/xclip/xsel, pkexec, x-terminal-emulator, XDG autostart.
func New(self string) Platform {
	return Platform{Notifier: dbusNotifier{}, Clipboard: clipboard{}, Admin: pkexec{}, Terminal: xterm{}, LoginItem: autostart{self: self}}
}

type dbusNotifier struct{}

func (dbusNotifier) Notify(title, body string) error {
	conn, err := dbus.SessionBus()
	if err != nil {
		return err
	}
	obj := conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	return obj.Call("org.freedesktop.Notifications.Notify", 0,
		"Wrapix Builder", uint32(0), "", title, body, []string{}, map[string]dbus.Variant{}, int32(8000)).Err
}

type clipboard struct{}

func (clipboard) Copy(text string) error {
	var candidates [][]string
	if os.Getenv("WAYLAND_DISPLAY") != "" {
		candidates = append(candidates, []string{"wl-copy"})
	}
	candidates = append(candidates, []string{"xclip", "-selection", "clipboard"}, []string{"xsel", "--clipboard", "--input"})
	for _, c := range candidates {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Stdin = strings.NewReader(text)
		// No output pipes: xclip and wl-copy leave a child serving the
		// selection, which would hold a pipe open and block us forever.
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %v", c[0], err)
		}
		return nil
	}
	return errors.New("no clipboard tool found: install wl-clipboard, xclip or xsel")
}

type pkexec struct{}

// Run passes argv to pkexec as separate arguments: no shell is involved.
func (pkexec) Run(argv []string) error {
	out, err := exec.Command("pkexec", argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pkexec: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

type xterm struct{}

func (xterm) Open(argv []string) error {
	return exec.Command("x-terminal-emulator", append([]string{"-e"}, argv...)...).Start()
}

type autostart struct{ self string }

func (a autostart) file() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", "wrapix-builder.desktop")
}

func (a autostart) Enabled() bool {
	_, err := os.Stat(a.file())
	return err == nil
}

func (a autostart) Set(on bool) error {
	if !on {
		err := os.Remove(a.file())
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.file()), 0o755); err != nil {
		return err
	}
	entry := "[Desktop Entry]\nType=Application\nName=Wrapix Builder\nExec=" + DesktopExec([]string{a.self}) + "\nX-GNOME-Autostart-enabled=true\n"
	return os.WriteFile(a.file(), []byte(entry), 0o644)
}
