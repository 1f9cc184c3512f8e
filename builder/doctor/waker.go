package doctor

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/wrapix/wrapix-builder/builder/agent"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/wakestate"
)

// checkWaker checks `wrapix-builder serve`: it runs, it holds the port Nix
// connects to, and it runs as the user whose container runtime it drives
// (Apple's runtime is per user). It never connects to the port: that would
// wake the builder.
func checkWaker(b *lifecycle.Builder) []Check {
	const name = "waker (wrapix-builder serve)"
	install := "`sudo wrapix-builder setup` installs it as a login agent (nix-darwin: the module does); or run `wrapix-builder serve`"
	var out []Check
	s, alive, err := wakestate.Read(b.Layout.DataDir)
	switch {
	case err != nil:
		out = append(out, Check{Name: name, Result: Fail, Detail: "cannot read " + wakestate.Path(b.Layout.DataDir) + ": " + err.Error(), Fix: install, Kind: problem.Setup})
	case s == nil || !alive:
		out = append(out, Check{Name: name, Result: Fail, Detail: "not running: nothing answers Nix on " + b.NixAddress() + " or starts the builder", Fix: install, Kind: problem.Setup})
	default:
		out = append(out, checkWakerProcess(b, s)...)
	}
	if s != nil && s.LastFailure != nil {
		c := Check{Name: "last wake", Result: Warn,
			Detail: fmt.Sprintf("at %s a build asked for the builder, but it could not start: %s", s.LastFailure.At.Local().Format(time.DateTime), s.LastFailure.Reason)}
		if r := s.LastFailure.RetryAt; alive && r != nil && time.Now().Before(*r) {
			c.Detail += fmt.Sprintf("; after %d failed start(s) in a row serve closes build connections until %s", s.LastFailure.Attempts, r.Local().Format(time.TimeOnly))
			c.Fix = "fix the reason, then `wrapix-builder start` (a start that succeeds ends the wait)"
		}
		out = append(out, c)
	}
	return out
}

func checkWakerProcess(b *lifecycle.Builder, s *wakestate.State) []Check {
	const name = "waker (wrapix-builder serve)"
	want := os.Getuid()
	if u, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil && want == 0 {
		want = u // under sudo: the invoking user's serve
	}
	if uid, ok := processUID(s.PID); (ok && uid != want) || s.UID != want {
		return []Check{{Name: name, Result: Fail, Detail: fmt.Sprintf("pid %d runs as uid %d, not as uid %d: it cannot drive this user's container runtime", s.PID, s.UID, want),
			Fix: "stop it and run serve as the user who runs the builder (the login agent does)", Kind: problem.Setup}}
	}
	if s.Listen != b.NixAddress() {
		return []Check{{Name: name, Result: Fail, Detail: fmt.Sprintf("pid %d listens on %s, but port in config.toml says %s", s.PID, s.Listen, b.NixAddress()),
			Fix: "restart it so it reads the config (macOS: `launchctl kickstart -k gui/$(id -u)/" + agent.Label + "`)", Kind: problem.Setup}}
	}
	// Holding the port: binding it must fail, and the holder must be serve.
	ln, err := net.Listen("tcp", b.NixAddress())
	if err == nil {
		ln.Close()
		return []Check{{Name: name, Result: Fail, Detail: fmt.Sprintf("pid %d runs but nothing listens on %s", s.PID, b.NixAddress()), Fix: "restart it", Kind: problem.Setup}}
	}
	if holder, ok := listenerPID(b.Config.Port); ok && holder != s.PID {
		return []Check{{Name: name, Result: Fail, Detail: fmt.Sprintf("%s is held by pid %d, not by serve (pid %d)", b.NixAddress(), holder, s.PID),
			Fix: fmt.Sprintf("stop that program (`lsof -nP -iTCP:%d -sTCP:LISTEN`) or change port in config.toml", b.Config.Port), Kind: problem.Conflict}}
	}
	idle := "never stops the builder"
	if s.IdleStopSec > 0 {
		idle = "stops the builder after " + (time.Duration(s.IdleStopSec) * time.Second).String() + " idle"
	}
	return []Check{{Name: name, Result: OK, Detail: fmt.Sprintf("pid %d (%s) on %s, %s", s.PID, s.User, s.Listen, idle)}}
}
