package lifecycle

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// parseBusy on process tables as the busy script prints them, with the
// entrypoint as PID 1 (the stand-in) and as another PID (an init above it).
// uid 1000 is the builder user, 74 sshd's privilege-separation user.
func TestParseBusy(t *testing.T) {
	for _, entry := range []string{"1", "57"} {
		base := "proc 10 " + entry + " 0 sshd\nproc 11 " + entry + " 0 nix-daemon\n" +
			"proc 20 10 0 sshd-session\nproc 21 20 1000 sshd-session\nproc 22 21 1000 sh\nmine 20\nme 1000\n" // the check's own session
		authed := "proc 30 10 0 sshd-session\nproc 31 30 1000 sshd-session\n"
		for _, tc := range []struct {
			name, extra string
			busy        bool
			authing     string
		}{
			{"idle", "", false, ""},
			{"a build over ssh-ng", authed + "proc 32 31 1000 nix-daemon\n", true, ""},
			{"someone's shell", authed + "proc 32 31 1000 sh\n", true, ""},
			{"someone's command in a shell", authed + "proc 32 31 1000 sh\nproc 33 32 1000 sleep\n", true, ""},
			{"the hourly gc", "proc 60 " + entry + " 0 nix-store\n", true, ""},
			{"a nix-build left running after its session", "proc 61 " + entry + " 1000 nix-build\n", true, ""},
			// Observation never counts (it kept the builder up forever):
			{"a status poll's socket worker", "proc 40 11 0 nix-daemon\n", false, ""},
			{"a status poll forwarding to the socket", authed, false, ""},
			{"the app's build-log follower", authed + "proc 32 31 1000 sh\nproc 33 32 1000 tail\nproc 34 32 1000 cat\nobs 32\n", false, ""},
			{"an observer mark elsewhere hides nothing", authed + "proc 32 31 1000 sh\nobs 99\n", true, ""},
			{"a cycle in a forged table", "proc 80 81 0 sh\nproc 81 80 0 sh\n", false, ""},
			// Authenticating: looked at again (OpenSSH 9.2 names every process sshd; 10 has sshd-auth).
			{"a connection authenticating (9.2)", "proc 50 10 0 sshd\nproc 51 50 74 sshd\n", false, "50"},
			{"a connection authenticating (10)", "proc 50 10 0 sshd-session\nproc 51 50 74 sshd-auth\n", false, "50"},
			{"a connection accepted, nothing forked yet", "proc 50 10 0 sshd-session\n", false, "50"},
		} {
			s := parseBusy(base + tc.extra)
			if s.busy() != tc.busy || strings.Join(s.authenticating, " ") != tc.authing {
				t.Errorf("entry %s, %s: busy %v (%s), authenticating %q", entry, tc.name, s.busy(), strings.Join(s.work, ", "), s.authenticating)
			}
		}
	}
}

// The busy script runs in sh with builtins only and prints the process table
// parseBusy reads: here, on this machine's /proc, it must list PID 1, the
// marked observer and the user running it.
func TestBusyScriptRuns(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	home := t.TempDir()
	marks := filepath.Join(home, ".wrapix-observers")
	// A mark left by an earlier process whose PID is now PID 1's: another
	// start time, so not an observer, and removed. And a dead PID's mark.
	if err := os.MkdirAll(marks, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(marks, "1"), []byte("1\n"), 0o600)
	os.WriteFile(filepath.Join(marks, "999999999"), []byte("5\n"), 0o600)
	cmd := exec.Command(sh, "-c", sshclient.ObserverMark+busyScript)
	cmd.Env = append(os.Environ(), "HOME="+home)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if !strings.Contains(s, "\nobs ") || !strings.Contains(s, "\nproc 1 0 0 ") || !strings.Contains(s, "\nme 0\n") || !strings.HasPrefix(s, "mine ") {
		t.Fatalf("busy script output:\n%s", s)
	}
	if strings.Contains(s, "\nobs 1\n") || strings.Contains(s, "\nobs 999999999\n") {
		t.Fatalf("a stale mark counted:\n%s", s)
	}
	for _, stale := range []string{"1", "999999999"} {
		if _, err := os.Stat(filepath.Join(marks, stale)); err == nil {
			t.Errorf("stale mark %s was kept", stale)
		}
	}
	if fi, err := os.Stat(marks); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("marks directory: %v %v", fi, err)
	}
}

// A chained process table (each process the child of the one before) is
// read in linear time: 200 000 lines, where the walk from every process to
// its root took 112 s at 40 000 before. And a table longer than maxProcs is
// work, not a reason to stop the builder.
func TestParseBusyLongTables(t *testing.T) {
	var chain strings.Builder
	chain.WriteString("proc 10 1 0 sshd\nproc 11 10 0 sshd-session\nmine 99\nme 1000\nproc 12 11 1000 sh\n")
	for i := 13; i < 13+60000; i++ {
		fmt.Fprintf(&chain, "proc %d %d 1000 sh\n", i, i-1)
	}
	done := make(chan busyState, 1)
	go func() { done <- parseBusy(chain.String()) }()
	select {
	case s := <-done:
		if !s.busy() || !strings.Contains(strings.Join(s.work, ","), "SSH session 11") {
			t.Errorf("a 60 000-deep session: %v", s.work)
		}
	case <-time.After(time.Minute): // quadratic: about 4 minutes here
		t.Fatal("a 60 000-deep chain was not parsed within a minute")
	}
	var many strings.Builder
	many.WriteString("proc 10 1 0 sshd\nmine 99\nme 1000\n")
	for i := 0; i < maxProcs+10; i++ {
		fmt.Fprintf(&many, "proc %d 1 0 sleep\n", 100+i)
	}
	if s := parseBusy(many.String()); !s.busy() || !strings.Contains(strings.Join(s.work, ","), "more than") {
		t.Errorf("over maxProcs processes: %v", s.work)
	}
}

// The busy script's answer comes from the builder: lines that are not what
// the script prints count for nothing, names are cleaned, and the summary
// stays short however many processes are claimed.
func TestParseBusyHostile(t *testing.T) {
	base := "proc 10 1 0 sshd\nproc 11 1 0 nix-daemon\nmine 20\nme 1000\n"
	for _, extra := range []string{
		"proc x 10 0 sshd\n", "proc 30 10 0\n", "proc 30 10 0 sshd extra\n", "mine\n", "proc 30 1 x nix-store\n",
		"proc 30 1 0 nix-store-with-a-very-long-name\n", "proc 99999999999 11 0 nix-store\n", "obs x\n",
	} {
		if s := parseBusy(base + extra); s.busy() {
			t.Errorf("%q: busy (%s)", extra, strings.Join(s.work, ", "))
		}
	}
	s := parseBusy(base + "proc 30 1 0 nix\x1b]0;x\x07\n")
	if what := strings.Join(s.work, ", "); !s.busy() || strings.ContainsAny(what, "\x1b\x07") {
		t.Errorf("escape in a name: %v %q", s.busy(), what)
	}
	var many strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&many, "proc %d 1 0 nix-store\n", 100+i)
	}
	if s := parseBusy(base + many.String()); !s.busy() || len(strings.Join(s.work, ", ")) > 1000 {
		t.Errorf("100 000 Nix tools: %v, %d bytes of summary", s.busy(), len(strings.Join(s.work, ", ")))
	}
}

// FuzzParseBusy: any answer gives a short, clean summary without panicking
// (and the session walk ends, whatever cycles the table holds).
func FuzzParseBusy(f *testing.F) {
	f.Add("proc 10 1 0 sshd\nproc 11 1 0 nix-daemon\nproc 20 10 0 sshd-session\nmine 20\nme 1000\nproc 32 20 1000 nix-daemon\n")
	f.Add("mine 1\nproc 1 1 0 sshd\nproc 2 1 0 \x1b[2J\nobs 2\n")
	f.Add("proc 5 6 0 sh\nproc 6 5 0 sh\nproc 7 5 0 sshd\n")
	f.Fuzz(func(t *testing.T, out string) {
		what := strings.Join(parseBusy(out).work, ", ")
		if textclean.Line(what, 0) != what || !utf8.ValidString(what) {
			t.Fatalf("summary %q not clean", what)
		}
		if len(what) > 2000 {
			t.Fatalf("summary of %d bytes", len(what))
		}
	})
}
