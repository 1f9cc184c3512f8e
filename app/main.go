// Command wrapix-builder-app is the Wrapix Builder menu-bar app.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

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
	flag.Parse()
	l, err := paths.FromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrapix-builder-app:", err)
		os.Exit(1)
	}
	cfg, err := config.Load(l.ConfigFile())
	if err != nil {
		fmt.Fprintln(os.Stderr, "wrapix-builder-app:", err)
		os.Exit(3)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tray.Run(func(t *tray.Tray) {
		app := &trayapp.App{Builder: lifecycle.New(l, cfg, *containerCLI), Platform: platform.New(self), Tray: t, CLI: *cli}
		_ = app.Run(ctx)
		t.Quit()
	})
}
