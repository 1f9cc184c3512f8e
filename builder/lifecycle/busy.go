package lifecycle

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/runtime"
	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// Running reports whether the builder container runs (one `container ls`).
func (b *Builder) Running(ctx context.Context) (bool, error) {
	c, err := b.CLI.Get(ctx, ContainerName)
	if runtime.IsClass(err, runtime.ErrAPIServerDown) {
		return false, nil
	}
	return c.Running(), err
}

// busyScript lists the processes that tell whether the builder is at work,
// as "proc <pid> <ppid> <name>", and the SSH session running the script
// ("mine": the parent of its shell's parent, sshd's per-connection monitor).
// Only shell builtins: the image's busybox has no standalone applets.
const busyScript = `read -r _ _ _ mine _ < /proc/$PPID/stat
echo "mine $mine"
for d in /proc/[0-9]*; do
  read -r c < "$d/comm" 2>/dev/null || continue
  case $c in sshd|sshd-session|sshd-auth|nix-daemon|nix-store|nix-collect-gar*|nix) ;; *) continue ;; esac
  read -r p _ _ pp _ < "$d/stat" 2>/dev/null && echo "proc $p $pp $c"
done
`

// Busy asks the builder whether anything is at work, connecting to the
// container's port directly (not through the waker). The answer says what
// was found, for the log.
func (b *Builder) Busy(ctx context.Context) (bool, string, error) {
	ks, err := keys.Load(b.Layout)
	if err != nil {
		return false, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := b.dial(ctx, ks)
	if err != nil {
		return false, "", err
	}
	defer c.Close()
	out, err := c.Output(ctx, busyScript)
	if err != nil {
		return false, "", err
	}
	busy, what := parseBusy(string(out))
	return busy, what, nil
}

// parseBusy decides from busyScript's lines. At work means: a nix-daemon
// worker (every build, copy and query runs in one — ssh-ng's
// `nix-daemon --stdio` or a fork of the daemon for its socket), a Nix tool
// (the entrypoint's hourly GC), or an SSH connection other than the check's
// own (someone's `wrapix-builder ssh`, a connection still authenticating).
// The daemons themselves are the entrypoint's children: the sshd listener is
// the sshd whose parent is no sshd, and the entrypoint is its parent
// (PID 1 in the stand-in; maybe not under Apple's init, so no PID is assumed).
func parseBusy(out string) (bool, string) {
	type proc struct{ pid, ppid, name string }
	var procs []proc
	byPID := map[string]proc{}
	mine := ""
	// The builder's answer is untrusted: a line counts only with a numeric
	// PID and a name a kernel would give (comm: at most 15 bytes), shown
	// cleaned; what is found names at most maxFound processes.
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "mine" && isPID(f[1]):
			mine = f[1]
		case len(f) == 4 && f[0] == "proc" && isPID(f[1]) && isPID(f[2]) && len(f[3]) <= 15:
			f[3] = textclean.Line(f[3], 0)
			p := proc{f[1], f[2], f[3]}
			procs = append(procs, p)
			byPID[p.pid] = p
		}
	}
	isSSHD := func(pid string) bool { p, ok := byPID[pid]; return ok && strings.HasPrefix(p.name, "sshd") }
	listener, entry := map[string]bool{}, map[string]bool{}
	for _, p := range procs {
		if strings.HasPrefix(p.name, "sshd") && !isSSHD(p.ppid) {
			listener[p.pid], entry[p.ppid] = true, true
		}
	}
	var found []string
	for _, p := range procs {
		switch {
		case strings.HasPrefix(p.name, "sshd"):
			if listener[p.ppid] && p.pid != mine {
				found = append(found, "an SSH connection (pid "+p.pid+")")
			}
		case p.name == "nix-daemon":
			if !entry[p.ppid] {
				found = append(found, "a nix-daemon worker (pid "+p.pid+")")
			}
		default:
			found = append(found, p.name+" (pid "+p.pid+")")
		}
	}
	if len(found) > maxFound {
		found = append(found[:maxFound-1], "and "+strconv.Itoa(len(found)-maxFound+1)+" more")
	}
	return len(found) > 0, strings.Join(found, ", ")
}

const maxFound = 10

// isPID: 1 to 10 digits.
func isPID(s string) bool {
	if len(s) == 0 || len(s) > 10 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
