package platform

import (
	"context"
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
	return Platform{Notifier: dbusNotifier{}, Clipboard: clipboard{}, Admin: pkexec{}, Terminal: xterm{}, LoginItem: Autostart{Self: self}}
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

// pkexecDismissed is pkexec's exit status when the user dismissed the
// authentication dialog (polkit src/programs/pkexec.c: ret = 126 when
// polkit_authorization_result_get_dismissed; 127 is "not authorized").
const pkexecDismissed = 126

// Run passes argv to pkexec as separate arguments: no shell is involved.
// pkexec execs the command as root (polkit src/programs/pkexec.c), out of
// our reach for signals: runAdmin's lifeline stops it.
func (pkexec) Run(ctx context.Context, argv []string) error {
	return runAdmin(ctx, argv, func(argv []string) *exec.Cmd { return exec.Command("pkexec", argv...) },
		func(err error, out string) error {
			if err == nil {
				return nil
			}
			if exitCode(err) == pkexecDismissed {
				return ErrCancelled
			}
			return fmt.Errorf("pkexec: %w: %s", err, strings.TrimSpace(out))
		})
}

type xterm struct{}

func (xterm) Open(action string, argv []string) error {
	return exec.Command("x-terminal-emulator", append([]string{"-e"}, argv...)...).Start()
}

// Autostart is start at login through an XDG autostart entry. The entry
// runs a stable command: the app's name when the PATH finds it (a Nix
// profile's link, which outlives the store path the app runs from), else
// the program's own path — never a /nix/store path, which the next upgrade
// removes.
type Autostart struct{ Self string }

// File is the autostart entry.
func (a Autostart) File() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", "wrapix-builder.desktop")
}

const appName = "wrapix-builder-app"

// nixStore is where Nix keeps packages (a variable for the tests).
var nixStore = "/nix/store/"

// command is what the entry runs, or why there is nothing stable to run.
func (a Autostart) command() (string, error) {
	self, err := filepath.EvalSymlinks(a.Self)
	if err != nil {
		return "", fmt.Errorf("start at login: %w", err)
	}
	inStore := strings.HasPrefix(self, nixStore)
	if found, err := exec.LookPath(appName); err == nil {
		// From the store, the installed app (any version) is what should
		// start; elsewhere, only if the PATH leads to this very program.
		if real, err := filepath.EvalSymlinks(found); err == nil && (inStore || real == self) {
			return appName, nil
		}
	}
	if inStore {
		return "", fmt.Errorf("start at login: %s is in the Nix store, which an upgrade replaces; install the app into your profile (nix profile install) so %s is on PATH", self, appName)
	}
	return a.Self, nil
}

// State reads the entry: it is on when the entry is enabled and its Exec
// program exists (an entry left pointing at a removed path starts nothing).
func (a Autostart) State() LoginState {
	if _, err := a.command(); err != nil {
		return LoginState{Problem: "install the app into your profile first"}
	}
	data, err := os.ReadFile(a.File())
	if err != nil {
		return LoginState{}
	}
	prog := ""
	for _, line := range strings.Split(string(data), "\n") {
		key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
		switch key {
		case "Hidden":
			if value == "true" {
				return LoginState{}
			}
		case "X-GNOME-Autostart-enabled":
			if value == "false" {
				return LoginState{}
			}
		case "Exec":
			prog = desktopExecProgram(value)
		}
	}
	if prog == "" {
		return LoginState{}
	}
	if _, err := exec.LookPath(prog); err != nil {
		return LoginState{}
	}
	return LoginState{On: true}
}

func (a Autostart) Set(on bool) error {
	if !on {
		err := os.Remove(a.File())
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	cmd, err := a.command()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(a.File()), 0o755); err != nil {
		return err
	}
	entry := "[Desktop Entry]\nType=Application\nName=Wrapix Builder\nExec=" + DesktopExec([]string{cmd}) + "\nX-GNOME-Autostart-enabled=true\n"
	return os.WriteFile(a.File(), []byte(entry), 0o644)
}

// desktopExecProgram is the program of an Exec value: its first word,
// undoing the Desktop Entry spec's two levels of escaping that DesktopExec
// applies (the string's `\\` → `\`, then the quoting's `\x` → x), and its
// doubled %.
func desktopExecProgram(value string) string {
	return strings.ReplaceAll(desktopExecWord(value), "%%", "%")
}

func desktopExecWord(value string) string {
	value = strings.ReplaceAll(strings.TrimSpace(value), `\\`, `\`)
	if !strings.HasPrefix(value, `"`) {
		prog, _, _ := strings.Cut(value, " ")
		return prog
	}
	var b strings.Builder
	for i := 1; i < len(value); i++ {
		switch c := value[i]; {
		case c == '\\' && i+1 < len(value):
			i++
			b.WriteByte(value[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
