package lifecycle

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// parseBusy on process tables as the busy script prints them, with the
// entrypoint as PID 1 (the stand-in) and as another PID (an init above it).
func TestParseBusy(t *testing.T) {
	for _, entry := range []string{"1", "57"} {
		base := "proc 10 " + entry + " sshd\nproc 11 " + entry + " nix-daemon\n" +
			"proc 20 10 sshd-session\nproc 21 20 sshd-session\nmine 20\n" // the check's own session
		for _, tc := range []struct {
			name, extra string
			busy        bool
		}{
			{"idle", "", false},
			{"a build over ssh-ng", "proc 30 10 sshd-session\nproc 31 30 sshd-session\nproc 32 31 nix-daemon\n", true},
			{"a worker for the socket", "proc 40 11 nix-daemon\n", true},
			{"someone's shell", "proc 50 10 sshd\nproc 51 50 sshd\n", true},
			{"the hourly gc", "proc 60 " + entry + " nix-store\n", true},
		} {
			busy, what := parseBusy(base + tc.extra)
			if busy != tc.busy {
				t.Errorf("entry %s, %s: busy %v (%s)", entry, tc.name, busy, what)
			}
		}
	}
}

// The busy script's answer comes from the builder: lines that are not what
// the script prints count for nothing, names are cleaned, and the summary
// stays short however many processes are claimed.
func TestParseBusyHostile(t *testing.T) {
	base := "proc 10 1 sshd\nproc 11 1 nix-daemon\nmine 20\n"
	for _, extra := range []string{
		"proc x 10 sshd\n", "proc 30 10\n", "proc 30 10 sshd extra\n", "mine\n",
		"proc 30 1 nix-store-with-a-very-long-name\n", "proc 99999999999 11 nix-daemon\n",
	} {
		if busy, what := parseBusy(base + extra); busy {
			t.Errorf("%q: busy (%s)", extra, what)
		}
	}
	busy, what := parseBusy(base + "proc 30 1 nix\x1b]0;x\x07\n")
	if !busy || strings.ContainsAny(what, "\x1b\x07") {
		t.Errorf("escape in a name: %v %q", busy, what)
	}
	var many strings.Builder
	for i := 0; i < 100000; i++ {
		many.WriteString("proc 1" + strings.Repeat("0", 5) + " 11 nix-daemon\n")
	}
	if busy, what := parseBusy(base + many.String()); !busy || len(what) > 1000 {
		t.Errorf("100 000 workers: %v, %d bytes of summary", busy, len(what))
	}
}

// FuzzParseBusy: any answer gives a short, clean summary without panicking.
func FuzzParseBusy(f *testing.F) {
	f.Add("proc 10 1 sshd\nproc 11 1 nix-daemon\nproc 20 10 sshd-session\nmine 20\nproc 32 20 nix-daemon\n")
	f.Add("mine 1\nproc 1 1 sshd\nproc 2 1 \x1b[2J\n")
	f.Fuzz(func(t *testing.T, out string) {
		_, what := parseBusy(out)
		if textclean.Line(what, 0) != what || !utf8.ValidString(what) {
			t.Fatalf("summary %q not clean", what)
		}
		if len(what) > 2000 {
			t.Fatalf("summary of %d bytes", len(what))
		}
	})
}
