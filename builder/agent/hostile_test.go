package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Setup installs the agent as root into a home the user controls. The user
// can make ~/Library/LaunchAgents a symlink to a root-owned directory (here
// standing for /etc/nix or /Library/LaunchDaemons): root must neither write
// the plist there nor hand that directory to the user (chown follows links).
// The user's files are made as the user, so a link reaches only what the
// user could write anyway.
func TestInstallAsRootDoesNotFollowTheUsersLinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (setup's case); make test runs as root")
	}
	const uid, gid = 65534, 65534 // nobody
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} { // the user must reach its home
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rootOwned := filepath.Join(base, "etc-nix")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(filepath.Join(home, "Library"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{home, filepath.Join(home, "Library")} {
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(rootOwned, filepath.Join(home, "Library", "LaunchAgents")); err != nil {
		t.Fatal(err)
	}
	run := func([]string) error { return nil }
	err := Install(User{Home: home, UID: uid, GID: gid}, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, run)
	fi, serr := os.Stat(rootOwned)
	if serr != nil {
		t.Fatal(serr)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
		t.Errorf("the root-owned directory behind the user's link now belongs to uid %d", st.Uid)
	}
	if _, serr := os.Lstat(filepath.Join(rootOwned, Label+".plist")); serr == nil {
		t.Errorf("root wrote the agent through the user's link into %s (Install: %v)", rootOwned, err)
	}
	if err == nil {
		t.Log("Install succeeded: the plist went where the user (not root) could write")
	}

	// A plain home: the agent and the directory made for it belong to the user.
	home2 := filepath.Join(base, "home2")
	if err := os.Mkdir(home2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home2, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := Install(User{Home: home2, UID: uid, GID: gid}, Spec{Program: "/x", DataDir: "/d", ConfigDir: "/c"}, run); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(home2, "Library"), filepath.Dir(Path(home2)), Path(home2)} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s belongs to %d:%d, want the user's %d:%d", p, st.Uid, st.Gid, uid, gid)
		}
	}
	if fi, _ := os.Stat(Path(home2)); fi.Mode().Perm() != 0o644 {
		t.Errorf("agent mode %04o, want 0644", fi.Mode().Perm())
	}
	if err := Uninstall(User{Home: home2, UID: uid, GID: gid}, run); err != nil || Installed(home2) {
		t.Fatalf("uninstall: %v", err)
	}
}

// The agent records the program's path for every later login. Run from a
// quarantined download, macOS runs the app from an App Translocation mount,
// and run from the disk image it lives under /Volumes: both are gone later,
// and the agent would fail at every login. Such a path is refused with the fix.
func TestInstallRefusesAPathThatGoesAway(t *testing.T) {
	run := func([]string) error { return nil }
	u := User{Home: t.TempDir(), UID: os.Getuid(), GID: os.Getgid()}
	for _, p := range []string{
		"/private/var/folders/xy/T/AppTranslocation/3F2A/d/Wrapix Builder.app/Contents/MacOS/wrapix-builder",
		"/Volumes/Wrapix Builder/Wrapix Builder.app/Contents/MacOS/wrapix-builder",
	} {
		err := Install(u, Spec{Program: p, DataDir: "/d", ConfigDir: "/c"}, run)
		if err == nil || !strings.Contains(err.Error(), "Applications") {
			t.Errorf("%s: %v", p, err)
		}
		if Installed(u.Home) {
			t.Fatalf("%s: installed", p)
		}
	}
	for _, p := range []string{"/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder", "/Volumes/External/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder"} {
		if err := Install(u, Spec{Program: p, DataDir: "/d", ConfigDir: "/c"}, run); err != nil {
			t.Fatal(err)
		}
	}
}

// launchd frees a label a few seconds after `bootout` (it waits for the job
// to exit, then cleans up); `bootstrap` in between fails with "Bootstrap
// failed: 5: Input/output error". Re-running setup while serve runs must
// still load the new agent. The fake launchd here drains for 1.5 s.
func TestReinstallWaitsForLaunchdToReleaseTheLabel(t *testing.T) {
	var drainedAt time.Time
	var calls []string
	run := func(argv []string) error {
		calls = append(calls, argv[1])
		switch argv[1] {
		case "bootout":
			drainedAt = time.Now().Add(1500 * time.Millisecond)
		case "bootstrap":
			if time.Now().Before(drainedAt) {
				return errors.New("exit status 5: Bootstrap failed: 5: Input/output error")
			}
		}
		return nil
	}
	u := User{Home: t.TempDir(), UID: os.Getuid(), GID: os.Getgid()}
	if err := Install(u, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, run); err != nil {
		t.Fatalf("install over a running agent: %v (launchctl calls %v)", err, calls)
	}
	if calls[len(calls)-1] != "bootstrap" {
		t.Fatalf("calls %v", calls)
	}
}

// nix-darwin's services.wrapix-builder runs serve from its own agent
// (launchd.user.agents.wrapix-builder: org.nixos.wrapix-builder). A second
// one from setup would fight it for the port at every login: setup leaves
// serve to nix-darwin.
func TestInstallLeavesServeToNixDarwin(t *testing.T) {
	home := t.TempDir()
	nixDarwin := filepath.Join(home, "Library", "LaunchAgents", "org.nixos.wrapix-builder.plist")
	os.MkdirAll(filepath.Dir(nixDarwin), 0o755)
	os.Symlink("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-org.nixos.wrapix-builder.plist", nixDarwin)
	var calls [][]string
	run := func(argv []string) error { calls = append(calls, argv); return nil }
	err := Install(User{Home: home, UID: os.Getuid(), GID: os.Getgid()}, Spec{Program: "/usr/local/bin/wrapix-builder", DataDir: "/d", ConfigDir: "/c"}, run)
	if !errors.Is(err, ErrNixDarwinAgent) || Installed(home) || len(calls) != 0 {
		t.Fatalf("Install: %v, installed %v, launchctl %v", err, Installed(home), calls)
	}
}
