package lifecycle

import "testing"

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
