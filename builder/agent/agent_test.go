package agent

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The plist is read back by a real plist parser (Python's plistlib, which
// reads Apple's XML format): hostile characters in paths survive exactly.
func TestPlistParsesBackExactly(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is required (plistlib reads the agent back)")
	}
	s := Spec{Program: "/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder",
		DataDir: `/Users/o'brien "&<x>" $(id)/.local/share/wrapix`, ConfigDir: "/Users/o'brien/.config/wrapix ünï"}
	text, err := Plist(s)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "-c", `import plistlib, sys, json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))`)
	cmd.Stdin = strings.NewReader(text)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("plistlib refused the agent: %v\n%s\n%s", err, out, text)
	}
	var got struct {
		Label                       string
		ProgramArguments            []string
		RunAtLoad, KeepAlive        bool
		EnvironmentVariables        map[string]string
		AssociatedBundleIdentifiers []string
		StandardErrorPath           string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{s.Program, "serve", "--data-dir", s.DataDir, "--config-dir", s.ConfigDir}
	if got.Label != Label || !reflect.DeepEqual(got.ProgramArguments, want) || !got.RunAtLoad || !got.KeepAlive ||
		!strings.Contains(got.EnvironmentVariables["PATH"], "/usr/local/bin") || got.AssociatedBundleIdentifiers[0] != BundleID ||
		got.StandardErrorPath != s.DataDir+"/waker.log" {
		t.Fatalf("agent read back as %+v", got)
	}
	for _, bad := range []string{"/Users/a\nb", "/Users/a\x00b", ""} {
		if _, err := Plist(Spec{Program: "/x", DataDir: bad, ConfigDir: "/c"}); err == nil {
			t.Errorf("accepted data dir %q", bad)
		}
	}
}

// Install writes the agent and (re)loads it in the user's gui domain;
// Uninstall unloads and removes it, and is fine when nothing is installed.
func TestInstallUninstall(t *testing.T) {
	home := t.TempDir()
	var calls []string
	run := func(argv []string) error { calls = append(calls, strings.Join(argv, " ")); return nil }
	u := User{Home: home, UID: os.Getuid(), GID: os.Getgid()}
	if err := Install(u, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, run); err != nil {
		t.Fatal(err)
	}
	if !Installed(home) {
		t.Fatal("not installed")
	}
	uid := "gui/" + itoa(u.UID)
	want := []string{"/bin/launchctl print " + uid, "/bin/launchctl bootout " + uid + "/" + Label, "/bin/launchctl bootstrap " + uid + " " + Path(home)}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("launchctl calls %q, want %q", calls, want)
	}
	calls = nil
	if err := Uninstall(u, run); err != nil || Installed(home) {
		t.Fatalf("uninstall: %v", err)
	}
	if err := Uninstall(u, run); err != nil {
		t.Fatalf("second uninstall: %v", err)
	}
}

// Ensure (the app's Start at login) leaves an agent that is written with
// the same plist and loaded alone — reloading it would end serve and every
// build in flight — and installs and loads it otherwise.
func TestEnsureLeavesARunningAgent(t *testing.T) {
	home := t.TempDir()
	u := User{Home: home, UID: os.Getuid(), GID: os.Getgid()}
	spec := Spec{Program: "/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}
	uid := "gui/" + itoa(u.UID)
	bootout, bootstrap, print := "/bin/launchctl bootout "+uid+"/"+Label, "/bin/launchctl bootstrap "+uid+" "+Path(home), "/bin/launchctl print "+uid+"/"+Label
	session := "/bin/launchctl print " + uid
	loaded := false
	var calls []string
	run := func(argv []string) error {
		c := strings.Join(argv, " ")
		calls = append(calls, c)
		switch {
		case c == bootout:
			loaded = false
		case c == bootstrap:
			loaded = true
		case c == print && !loaded:
			return errors.New("exit status 113: Could not find service")
		}
		return nil
	}
	for _, step := range []struct {
		name  string
		setup func()
		spec  Spec
		want  []string
	}{
		{"not installed", func() {}, spec, []string{session, bootout, bootstrap}},
		{"installed and loaded", func() {}, spec, []string{print}},
		{"installed, not loaded", func() { loaded = false }, spec, []string{print, session, bootout, bootstrap}},
		{"another program", func() {}, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, []string{session, bootout, bootstrap}},
	} {
		step.setup()
		calls = nil
		if err := Ensure(u, step.spec, run); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if !reflect.DeepEqual(calls, step.want) {
			t.Errorf("%s: launchctl calls %q, want %q", step.name, calls, step.want)
		}
	}
}

// Setup over ssh with nobody logged in to the desktop (issue 17 point 7):
// launchd has no gui/<uid> domain, and bootstrap into it fails with "5:
// Input/output error" — before, only after the plist was written and 30 s
// of retries. The recording launchctl answers as launchd does without the
// domain; Install writes nothing, tries no bootstrap and names the fix.
func TestInstallWithoutGUISession(t *testing.T) {
	home := t.TempDir()
	u := User{Home: home, UID: os.Getuid(), GID: os.Getgid()}
	var calls []string
	run := func(argv []string) error {
		c := strings.Join(argv, " ")
		calls = append(calls, c)
		switch {
		case c == "/bin/launchctl print gui/"+itoa(u.UID):
			return errors.New("exit status 113: Could not find domain for port identifier")
		case strings.HasPrefix(c, "/bin/launchctl bootstrap "):
			return errors.New("exit status 5: Bootstrap failed: 5: Input/output error")
		}
		return nil
	}
	start := time.Now()
	err := Install(u, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, run)
	if !errors.Is(err, ErrNoGUISession) {
		t.Fatalf("Install without a gui domain: %v (after %s), want ErrNoGUISession", err, time.Since(start).Round(time.Second))
	}
	if Installed(home) {
		t.Error("the agent was written although it cannot be loaded")
	}
	for _, c := range calls {
		if strings.Contains(c, "bootstrap") || strings.Contains(c, "bootout") {
			t.Errorf("launchctl %q was run without a gui domain", c)
		}
	}
	if err := CheckSession(u, run); !errors.Is(err, ErrNoGUISession) || !strings.Contains(err.Error(), "Could not find domain") {
		t.Errorf("CheckSession: %v", err)
	}
	// nix-darwin's agent: nothing is loaded, so no session is needed.
	if err := os.MkdirAll(filepath.Join(home, "Library", "LaunchAgents"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "Library", "LaunchAgents", NixDarwinLabel+".plist"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckSession(u, run); err != nil {
		t.Errorf("CheckSession with nix-darwin's agent: %v", err)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// The agent runs its program at every login. From a Nix profile the running
// CLI is a /nix/store path, deleted by the garbage collection after the
// next upgrade (issue 17 point 6): the agent records the profile's link
// that leads to it, and refuses a store program no profile links to.
func TestStableProgramOutlivesAnUpgrade(t *testing.T) {
	base := t.TempDir()
	defer func(s string) { StoreDir = s }(StoreDir)
	StoreDir = filepath.Join(base, "nix", "store") + "/"
	mk := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	v1 := mk(StoreDir + "aaa-wrapix-builder-app-0.1.0/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder")
	link(v1, StoreDir+"aaa-wrapix-builder-app-0.1.0/bin/wrapix-builder")
	v2 := mk(StoreDir + "bbb-wrapix-builder-0.2.0/bin/wrapix-builder")
	profile := StoreDir + "ccc-profile"
	link(StoreDir+"aaa-wrapix-builder-app-0.1.0/bin/wrapix-builder", profile+"/bin/wrapix-builder")
	home := filepath.Join(base, "home")
	link(profile, filepath.Join(home, ".nix-profile"))
	u := User{Home: home, UID: os.Getuid(), GID: os.Getgid(), Name: "alice"}
	want := filepath.Join(home, ".nix-profile", "bin", "wrapix-builder")

	for _, self := range []string{v1, want} { // os.Executable's path, or the link it was run through
		got, err := StableProgram(self, u)
		if err != nil || got != want {
			t.Errorf("StableProgram(%s) = %q, %v; want the profile's link %s", self, got, err, want)
		}
	}
	if _, err := StableProgram(v2, u); err == nil || !strings.Contains(err.Error(), "no Nix profile of yours links to it") {
		t.Errorf("a store program no profile links to (nix run): %v", err)
	}
	outside := mk(filepath.Join(base, "Applications", "Wrapix Builder.app", "Contents", "MacOS", "wrapix-builder"))
	if got, err := StableProgram(outside, u); err != nil || got != outside {
		t.Errorf("a program outside the store: %q, %v", got, err)
	}
}
