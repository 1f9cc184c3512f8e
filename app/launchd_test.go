//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// The app as launchd starts it: launchd's PATH, HOME and nothing else (plus
// the session bus the Linux tray needs). Apple's container CLI is not
// installed when the app starts; it is installed at /usr/local/bin while the
// app runs, and the app must notice without a restart.
func TestAppUnderLaunchdFindsContainerInstalledLater(t *testing.T) {
	w := testenv.New(t)
	home := w.LaunchdHome() // no XDG variables: ~/.config and ~/.local/share

	addr, b := startBus(t)
	cli := filepath.Join(testenv.Binaries(t), "wrapix-builder")
	appBin := buildApp(t)
	wellKnown := t.TempDir() // shows as /usr/local/bin inside the app's mount namespace; empty for now
	app := testenv.LaunchdCommand(t, wellKnown, home, []string{"DBUS_SESSION_BUS_ADDRESS=" + addr}, appBin, "--cli", cli)
	var appOut strings.Builder
	app.Stdout, app.Stderr = &appOut, &appOut
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		app.Process.Kill()
		app.Wait()
		if t.Failed() {
			t.Logf("app output:\n%s", appOut.String())
		}
	})

	b.waitMenu(t, 30*time.Second, "runtime unavailable", nil, statusIs("Builder: container runtime unavailable"))

	// Apple's installer puts the CLI into /usr/local/bin; the user then opens
	// the menu (dbusmenu's "opened" event on the root, as a desktop shell sends).
	w.InstallStandin(wellKnown)
	deadline := time.Now().Add(30 * time.Second)
	var items []menuItem
	for time.Now().Before(deadline) {
		b.openMenu(t)
		for until := time.Now().Add(2 * time.Second); time.Now().Before(until); time.Sleep(20 * time.Millisecond) {
			items = b.layout(t)
			if statusIs("Builder: stopped")(items) {
				return
			}
		}
	}
	t.Fatalf("the app never found the container CLI installed after it started; last layout: %+v", items)
}
