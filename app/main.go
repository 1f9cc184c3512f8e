// Command wrapix-builder-app is the Wrapix Builder menu-bar app.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/platform"
	"github.com/wrapix/wrapix-builder/app/tray"
	"github.com/wrapix/wrapix-builder/app/trayapp"
	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/paths"
)

func main() {
	self, _ := os.Executable()
	cli := flag.String("cli", filepath.Join(filepath.Dir(self), "wrapix-builder"), "the wrapix-builder CLI (bundled beside the app)")
	containerCLI := flag.String("container-cli", "container", "Apple's container CLI")
	_ = flag.CommandLine.Parse(withoutProcessSerialNumber(os.Args[1:])) // ExitOnError: bad flags exit 2

	// A startup error (no home directory, a bad config.toml) does not end
	// the app: it is shown in the menu and a notification, with its fix, and
	// a fixed config.toml is picked up without a restart.
	app := &trayapp.App{Platform: platform.New(self), CLI: *cli}
	l, err := paths.FromEnv()
	if err == nil {
		app.Layout = l
		app.Reload = func() (*lifecycle.Builder, error) {
			cfg, err := config.Load(l.ConfigFile())
			if err != nil {
				return nil, err
			}
			return lifecycle.New(l, cfg, *containerCLI), nil
		}
		app.Builder, err = app.Reload()
	}
	app.StartupError = err

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	tray.Run(menu.Render(menu.State{StartupError: err}), func(t *tray.Tray) {
		app.Tray = t
		_ = app.Run(ctx)
		close(done)
		t.Quit()
	})
	// Quit: the tray has returned at once; give the controller a moment to
	// end the CLI calls it has running (their contexts kill them), no more.
	stop()
	select {
	case <-done:
	case <-time.After(50 * time.Millisecond):
	}
}

// withoutProcessSerialNumber drops the -psn_0_… argument Finder's
// LaunchServices passes on the first launch after Gatekeeper's check:
// flag.Parse would reject it and exit 2 before any window could say why.
func withoutProcessSerialNumber(args []string) []string {
	var out []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-psn_") {
			out = append(out, a)
		}
	}
	return out
}
