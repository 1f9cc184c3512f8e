// Package status is the one model of the builder's state: the CLI prints it
// as text or JSON, the app renders it as a menu. The JSON form is versioned
// (Schema) and documented in docs/status.md.
package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

// Schema is the version of the JSON document. It changes only when a field
// changes meaning or disappears; new fields may be added without a bump.
const Schema = 2

// Overall states.
const (
	Ready       = "ready"       // SSH answers with the pinned key and nix-daemon responds
	Starting    = "starting"    // the container runs but is not ready yet (first start initialises the store)
	Unhealthy   = "unhealthy"   // running, but SSH or nix-daemon fails
	Stopped     = "stopped"     // no builder container is running
	Unavailable = "unavailable" // the container runtime itself is missing or down
)

// Report is the status document.
type Report struct {
	Schema    int       `json:"schema"`
	State     string    `json:"state"`
	Summary   string    `json:"summary"`
	Container Container `json:"container"`
	SSH       SSH       `json:"ssh"`
	NixDaemon NixDaemon `json:"nixDaemon"`
	Store     Store     `json:"store"`
	Setup     Setup     `json:"setup"`
	Versions  Versions  `json:"versions"`
	Waker     Waker     `json:"waker"`
	Problem   *Problem  `json:"problem,omitempty"`
	Builds    *Builds   `json:"builds,omitempty"` // status --json, when ready (docs/builds.md)
	// Warnings are conditions that do not stop the builder but that the
	// user must know, e.g. builds running without the Nix sandbox.
	Warnings []Warning `json:"warnings,omitempty"`
}

// Builds is what the builder is building now.
type Builds struct {
	Running []builds.Build `json:"running"`
}

// Warning is one such condition with its fix.
type Warning struct {
	What string `json:"what"`
	Fix  string `json:"fix"`
}

// Waker is `wrapix-builder serve`, the piece that starts the builder when Nix
// connects and stops it when idle (docs/on-demand.md).
type Waker struct {
	Address         string       `json:"address"` // where Nix connects: 127.0.0.1:<port>
	Running         bool         `json:"running"` // a live serve process wrote waker.json
	PID             int          `json:"pid,omitempty"`
	User            string       `json:"user,omitempty"`
	IdleStopSeconds int64        `json:"idleStopSeconds"` // 0 = never
	Connections     int          `json:"connections"`
	StopsAt         *time.Time   `json:"stopsAt,omitempty"` // the idle stop is due then
	LastFailure     *WakeFailure `json:"lastFailure,omitempty"`
	IdleStoppedAt   *time.Time   `json:"idleStoppedAt,omitempty"` // serve last stopped the builder for being idle
}

// WakeFailure is the last time a connection could not start the builder.
type WakeFailure struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Attempts failed starts in a row; until RetryAt serve closes Nix's
	// connections at once rather than starting the builder again.
	Attempts int        `json:"attempts,omitempty"`
	RetryAt  *time.Time `json:"retryAt,omitempty"`
}

// Backoff says, relative to now, when serve will try again, or "" when the
// next connection starts the builder.
func (f *WakeFailure) Backoff(now time.Time) string {
	if f == nil || f.RetryAt == nil || !now.Before(*f.RetryAt) {
		return ""
	}
	return fmt.Sprintf("after %d failed start(s) in a row, serve closes build connections for %s more", f.Attempts, Until(now, *f.RetryAt))
}

type Container struct {
	Name      string     `json:"name"`
	Exists    bool       `json:"exists"`
	State     string     `json:"state"` // the runtime's: running, stopped, stopping, unknown; "" when absent
	IP        string     `json:"ip,omitempty"`
	Image     string     `json:"image,omitempty"`
	StartedAt *time.Time `json:"startedAt,omitempty"`
	Published string     `json:"published,omitempty"` // host address:port of the builder's sshd
}

type SSH struct {
	Address            string  `json:"address"`
	OK                 bool    `json:"ok"`
	HostKeyFingerprint string  `json:"hostKeyFingerprint,omitempty"`
	LatencyMillis      float64 `json:"latencyMillis,omitempty"`
	Error              string  `json:"error,omitempty"`
}

type NixDaemon struct {
	OK       bool   `json:"ok"`
	Version  string `json:"version,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Error    string `json:"error,omitempty"`
}

type Store struct {
	Backend  string `json:"backend"`  // volume or directory
	Location string `json:"location"` // volume name or host directory
	// SizeBytes is the disk the store volume takes on the Mac (its sparse
	// image's allocated blocks): it only grows, whatever garbage collection frees.
	SizeBytes *int64 `json:"sizeBytes,omitempty"`
	// UsedBytes is the store in use: what the filesystem inside the volume
	// uses (measured on the running builder).
	UsedBytes *int64 `json:"usedBytes,omitempty"`
	// VolumeBytes is the volume's size, the most the store can hold.
	VolumeBytes *int64 `json:"volumeBytes,omitempty"`
	// ReclaimableBytes is what `gc --compact` would give back to macOS, when
	// that is worth doing (see Reclaimable).
	ReclaimableBytes *int64 `json:"reclaimableBytes,omitempty"`
	CapBytes         int64  `json:"capBytes"`
}

// Reclaimable says whether the disk the store volume takes (disk) is so much
// more than the store in use (used) that `gc --compact` is worth its copy:
// at least 1 GiB and half as much again. Negative numbers are unknown.
func Reclaimable(disk, used int64) (int64, bool) {
	if disk < 0 || used < 0 || disk-used < 1<<30 || disk < used+used/2 {
		return 0, false
	}
	return disk - used, true
}

// Text is the store line: where, in use, disk taken, cap.
func (s Store) Text() string {
	st := s.Backend + " " + s.Location
	var parts []string
	if s.UsedBytes != nil {
		parts = append(parts, config.HumanSize(*s.UsedBytes)+" in use")
	}
	if s.SizeBytes != nil {
		parts = append(parts, config.HumanSize(*s.SizeBytes)+" disk taken on the Mac")
	}
	limit := "cap " + config.HumanSize(s.CapBytes)
	if s.VolumeBytes != nil {
		limit += " of a " + config.HumanSize(*s.VolumeBytes) + " volume"
	}
	parts = append(parts, limit)
	st += ": " + strings.Join(parts, ", ")
	if s.ReclaimableBytes != nil {
		st += fmt.Sprintf(" (`wrapix-builder gc --compact` gives %s back)", config.HumanSize(*s.ReclaimableBytes))
	}
	return st
}

type Setup struct {
	Trust     string `json:"trust"`     // ok, missing, stale
	NixConfig string `json:"nixConfig"` // ok, missing, stale
	ManagedBy string `json:"managedBy"` // wrapix-builder or nix-darwin
	Detail    string `json:"detail,omitempty"`
}

type Versions struct {
	WrapixBuilder string `json:"wrapixBuilder"`
	ContainerCLI  string `json:"containerCLI,omitempty"`
	HostNix       string `json:"hostNix,omitempty"`
}

type Problem struct {
	What string `json:"what"`
	Fix  string `json:"fix,omitempty"`
}

// ProblemFrom fills Problem from an error.
func ProblemFrom(err error) *Problem {
	if p, ok := err.(*problem.Error); ok {
		what := p.What
		if p.Err != nil {
			what += ": " + p.Err.Error()
		}
		return &Problem{What: what, Fix: p.Fix}
	}
	return &Problem{What: err.Error()}
}

// Decide sets State and Summary from the observations.
func (r *Report) Decide(runtimeErr error) {
	r.Schema = Schema
	switch {
	case runtimeErr != nil:
		r.State = Unavailable
		r.Problem = ProblemFrom(runtimeErr)
		r.Summary = "container runtime unavailable"
	case !r.Container.Exists || r.Container.State != "running":
		r.State = Stopped
		r.Summary = "stopped"
		if r.Waker.Running {
			r.Summary = "starts on demand"
		}
		if f := r.Waker.LastFailure; f != nil {
			r.Problem = &Problem{What: "a build asked for the builder, but it could not start: " + f.Reason,
				Fix: "run `wrapix-builder start` to see it fail in full, or `wrapix-builder doctor`"}
			if b := f.Backoff(time.Now()); b != "" {
				r.Problem.What += " (" + b + ")"
				r.Problem.Fix = "run `wrapix-builder start` to see it fail in full (a start that succeeds ends the wait), or `wrapix-builder doctor`"
			}
		}
	case r.SSH.OK && r.NixDaemon.OK:
		r.State = Ready
		r.Summary = "ready at " + r.SSH.Address
	case r.SSH.OK:
		r.State = Unhealthy
		r.Summary = "SSH answers but nix-daemon does not"
		r.Problem = &Problem{What: r.NixDaemon.Error, Fix: "see `wrapix-builder logs`; `wrapix-builder stop && wrapix-builder start`"}
	case strings.Contains(r.SSH.Error, "host key"):
		r.State = Unhealthy
		r.Summary = "wrong SSH host key"
		r.Problem = &Problem{What: r.SSH.Error, Fix: "restart the builder so it picks up the current key: `wrapix-builder stop && wrapix-builder start`"}
	default:
		r.State = Starting
		r.Summary = "running, waiting for SSH"
		if r.SSH.Error != "" {
			r.Problem = &Problem{What: "SSH: " + r.SSH.Error, Fix: "wait for the first start to finish; if it persists run `wrapix-builder doctor`"}
		}
	}
}

// ExitCode is the documented exit code of `status` for this report.
func (r *Report) ExitCode() int {
	switch r.State {
	case Ready:
		return 0
	case Stopped:
		return problem.ExitCodeOf(problem.NotRunning)
	case Unavailable:
		return problem.ExitCodeOf(problem.Runtime)
	}
	return problem.ExitCodeOf(problem.Unhealthy)
}

// Text is the waker's status line, relative to now.
func (w Waker) Text(now time.Time) string {
	if !w.Running {
		return "not running: nothing starts the builder when Nix connects to " + w.Address + " (`wrapix-builder serve`; `sudo wrapix-builder setup` installs it at login)"
	}
	s := fmt.Sprintf("serve (pid %d) on %s", w.PID, w.Address)
	switch {
	case w.IdleStopSeconds == 0:
		s += ", never stops the builder"
	case w.StopsAt != nil:
		s += ", idle: stops the builder in " + Until(now, *w.StopsAt)
	default:
		s += ", stops the builder after " + (time.Duration(w.IdleStopSeconds) * time.Second).String() + " idle"
	}
	if w.Connections > 0 {
		s += fmt.Sprintf(", %d connection(s)", w.Connections)
	}
	return s
}

// Until renders the time left as the menu says it: "12 min", "40 s".
func Until(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d < time.Second:
		return "a moment"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	default:
		return fmt.Sprintf("%d min", int((d + 30*time.Second).Minutes()))
	}
}

// Text renders the one-screen human form.
func (r *Report) Text() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%-12s %s\n", k+":", v) }
	line("Builder", r.State+" — "+r.Summary)
	c := r.Container.State
	if !r.Container.Exists {
		c = "absent"
	}
	if r.Container.IP != "" {
		c += ", ip " + r.Container.IP
	}
	if r.Container.StartedAt != nil {
		c += ", up since " + r.Container.StartedAt.Local().Format("2006-01-02 15:04")
	}
	line("Container", r.Container.Name+" ("+c+")")
	if r.State != Unavailable && r.Container.Exists && r.Container.State == "running" {
		ssh := "ok"
		if !r.SSH.OK {
			ssh = "failing: " + r.SSH.Error
		} else if r.SSH.LatencyMillis > 0 {
			ssh = fmt.Sprintf("ok (%.0f ms)", r.SSH.LatencyMillis)
		}
		line("SSH", r.SSH.Address+" "+ssh)
		nd := "ok, Nix " + r.NixDaemon.Version
		if !r.NixDaemon.OK {
			nd = "failing: " + r.NixDaemon.Error
		}
		line("nix-daemon", nd)
	}
	line("Store", r.Store.Text())
	line("Waker", r.Waker.Text(time.Now()))
	line("Setup", fmt.Sprintf("trust %s, nix config %s (managed by %s)", r.Setup.Trust, r.Setup.NixConfig, r.Setup.ManagedBy))
	v := "wrapix-builder " + r.Versions.WrapixBuilder
	if r.Versions.ContainerCLI != "" {
		v += ", container " + r.Versions.ContainerCLI
	}
	if r.Versions.HostNix != "" {
		v += ", host Nix " + r.Versions.HostNix
	}
	line("Versions", v)
	for _, w := range r.Warnings {
		line("WARNING", w.What)
		line("Fix", w.Fix)
	}
	if r.Problem != nil {
		line("Problem", r.Problem.What)
		if r.Problem.Fix != "" {
			line("Fix", r.Problem.Fix)
		}
	}
	return b.String()
}
