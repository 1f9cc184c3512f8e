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

// busyScript prints the builder's process table for parseBusy, as
// "proc <pid> <ppid> <uid> <name>" (names outside a plain alphabet become
// "?"), the SSH session running the script ("mine": the parent of its
// shell's parent, sshd's per-connection monitor) and the observers
// ("obs <pid>": sessions that only watch, such as the app's build-log
// follower, which mark themselves with sshclient.ObserverMark). A mark holds
// its process's start time (stat field 22, the 20th after the name): a mark
// left behind (an `exec` drops the shell's traps) never names a later
// process that reuses the PID, and goes at the next check. The marks live
// in the builder user's own 0700 directory: no build user can forge one.
// Only shell builtins: the image's busybox has no standalone applets. The
// parent is read after the last ')' of stat: a name may hold spaces.
const busyScript = `read -r _ _ _ mine _ < /proc/$PPID/stat
echo "mine $mine"
while read -r k v _; do [ "$k" = Uid: ] && { echo "me $v"; break; }; done < /proc/$$/status
for f in ~/.wrapix-observers/*; do
  p=${f##*/}
  case $p in ''|*[!0-9]*) continue ;; esac
  read -r t < "$f" 2>/dev/null
  s=
  read -r s < "/proc/$p/stat" 2>/dev/null
  s=${s##*) }
  set -- $s
  if [ -n "$s" ] && [ "$t" = "${20}" ]; then echo "obs $p"; else rm -f "$f" 2>/dev/null; fi
done
for d in /proc/[0-9]*; do
  read -r c < "$d/comm" 2>/dev/null || continue
  read -r s < "$d/stat" 2>/dev/null || continue
  u=?
  while read -r k v _; do [ "$k" = Uid: ] && { u=$v; break; }; done < "$d/status" 2>/dev/null
  s=${s##*) }
  set -- $s
  case $c in *[!A-Za-z0-9._+-]*|'') c='?' ;; esac
  echo "proc ${d#/proc/} $2 $u $c"
done
`

// Busy asks the builder whether anything is at work, connecting to the
// container's port directly (not through the waker). The answer says what
// was found, for the log. A connection still authenticating may be someone's
// `wrapix-builder ssh` about to run a command, or a status poll: it is
// looked at again until it has authenticated or gone (at most 5 s; one
// that authenticates no sooner is a stranger's, and no work).
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
	var waitFor map[string]bool // the connections authenticating at the first look
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := c.Output(ctx, busyScript)
		if err != nil {
			return false, "", err
		}
		s := parseBusy(string(out))
		if s.busy() {
			return true, strings.Join(s.work, ", "), nil
		}
		if waitFor == nil {
			waitFor = map[string]bool{}
			for _, p := range s.authenticating {
				waitFor[p] = true
			}
		}
		still := false
		for _, p := range s.authenticating {
			still = still || waitFor[p]
		}
		if !still || time.Now().After(deadline) {
			return false, "", nil
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return false, "", ctx.Err()
		}
	}
}

// busyState is what parseBusy found: work, and the SSH connections not yet
// authenticated (their monitor's PID).
type busyState struct {
	work           []string
	authenticating []string
}

func (s busyState) busy() bool { return len(s.work) > 0 }

// parseBusy decides from busyScript's lines. At work means:
//   - a Nix tool anywhere (nix, nix-store, nix-build, the entrypoint's GC…):
//     every build, copy or query started on the builder runs one;
//   - a process in an SSH session other than the check's own and other than
//     an observer's: ssh-ng's `nix-daemon --stdio`, someone's
//     `wrapix-builder ssh` command or shell.
//
// Not work: an SSH connection with nothing running in it (`status` talking
// to nix-daemon's socket through it; one still authenticating is listed for
// another look), the daemon's workers for its socket (their clients are Nix
// tools or sessions, counted above; `status` opens one at every poll), and
// observers. So the app following the build log and `status` polling never
// keep the builder up. A connection has authenticated once a process in it
// runs as the builder user (sshd's post-auth child; before it, sshd's
// pre-auth child runs as its privilege-separation user).
// The daemons themselves are the entrypoint's children: the sshd listener is
// the sshd whose parent is no sshd (PID 1 is the entrypoint in the stand-in;
// maybe not under Apple's init, so no PID is assumed).
func parseBusy(out string) busyState {
	type proc struct{ pid, ppid, uid, name string }
	var procs []proc
	byPID := map[string]proc{}
	mine, me := "", ""
	observer := map[string]bool{}
	overflow := false
	// The builder's answer is untrusted: a line counts only with numeric
	// PIDs and uid and a name a kernel would give (comm: at most 15 bytes),
	// shown cleaned; what is found names at most maxFound processes.
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 2 && f[0] == "mine" && isPID(f[1]):
			mine = f[1]
		case len(f) == 2 && f[0] == "me" && isPID(f[1]):
			me = f[1]
		case len(f) == 2 && f[0] == "obs" && isPID(f[1]):
			observer[f[1]] = true
		case len(f) == 5 && f[0] == "proc" && isPID(f[1]) && isPID(f[2]) && (isPID(f[3]) || f[3] == "?") && len(f[4]) <= 15:
			p := proc{f[1], f[2], f[3], textclean.Line(f[4], 0)}
			if _, dup := byPID[p.pid]; dup {
				continue
			}
			if len(procs) == maxProcs {
				overflow = true
				continue
			}
			procs = append(procs, p)
			byPID[p.pid] = p
		}
	}
	isSSHD := func(pid string) bool { p, ok := byPID[pid]; return ok && strings.HasPrefix(p.name, "sshd") }
	listener := map[string]bool{}
	for _, p := range procs {
		if strings.HasPrefix(p.name, "sshd") && !isSSHD(p.ppid) {
			listener[p.pid] = true
		}
	}
	// session returns the SSH connection (its monitor, a child of the
	// listener) that p runs in, or "" — and whether an observer is on the
	// way. Each PID's answer is remembered, so the whole table costs one walk
	// per process at most (a chained table from the builder would cost n²
	// otherwise); a cycle in the table ends the walk.
	type answer struct {
		conn    string
		watched bool
	}
	known := map[string]answer{}
	session := func(p proc) (string, bool) {
		var path []string
		onPath := map[string]bool{}
		var a answer
		for {
			if k, ok := known[p.pid]; ok {
				a = k
				break
			}
			if onPath[p.pid] {
				break // a cycle: no session
			}
			path = append(path, p.pid)
			onPath[p.pid] = true
			if listener[p.ppid] && strings.HasPrefix(p.name, "sshd") {
				a = answer{conn: p.pid}
				break
			}
			q, ok := byPID[p.ppid]
			if !ok {
				break
			}
			p = q
		}
		// Back down the path: a process is watched when it or an ancestor
		// below the connection is an observer.
		for i := len(path) - 1; i >= 0; i-- {
			a.watched = a.watched || observer[path[i]]
			known[path[i]] = a
		}
		return a.conn, a.watched
	}
	var s busyState
	authenticated := map[string]bool{}
	for _, p := range procs {
		conn, watched := session(p)
		if conn != "" && p.uid == me {
			authenticated[conn] = true
		}
		switch {
		case strings.HasPrefix(p.name, "sshd"):
			// the listener and the connections' own processes
		case conn != "":
			if conn != mine && !watched {
				s.work = append(s.work, p.name+" in SSH session "+conn+" (pid "+p.pid+")")
			}
		case strings.HasPrefix(p.name, "nix") && p.name != "nix-daemon":
			s.work = append(s.work, p.name+" (pid "+p.pid+")")
		}
	}
	for _, p := range procs {
		if listener[p.ppid] && strings.HasPrefix(p.name, "sshd") && p.pid != mine && !authenticated[p.pid] {
			s.authenticating = append(s.authenticating, p.pid)
		}
	}
	if overflow {
		// Linux's default pid_max is 4194304 on 64-bit, but a builder at rest
		// runs a few dozen: a table this long is at work, or lying.
		s.work = append(s.work, "more than "+strconv.Itoa(maxProcs)+" processes")
	}
	if len(s.work) > maxFound {
		s.work = append(s.work[:maxFound-1], "and "+strconv.Itoa(len(s.work)-maxFound+1)+" more")
	}
	return s
}

const maxFound = 10

// maxProcs bounds what is read of the builder's process table.
const maxProcs = 65536

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
