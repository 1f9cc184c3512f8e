// Package builds turns the builder's build event log (written inside the
// builder by the entrypoint and Nix's post-build hook, docs/builds.md) into
// the list of running and finished builds that the CLI, status and the app
// show.
package builds

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// LogPath is the event log inside the builder (in the store volume).
const LogPath = "/nix/var/wrapix/builds.log"

// Schema is the version of `builds --json`.
const Schema = 1

// Outcomes.
const (
	Running     = "running"
	Succeeded   = "succeeded"
	Failed      = "failed"
	Interrupted = "interrupted"
)

// Event is one line of the log.
type Event struct {
	Event   string   `json:"event"` // start, success, failure, interrupted
	Drv     string   `json:"drv"`
	Outputs []string `json:"outputs,omitempty"`
	Time    float64  `json:"time"` // seconds since the epoch, the builder's clock
}

// Build is one build as the user sees it.
type Build struct {
	Drv      string     `json:"drv"`
	Name     string     `json:"name"`
	Outcome  string     `json:"outcome"`
	Start    time.Time  `json:"start"`
	End      *time.Time `json:"end,omitempty"`
	Duration float64    `json:"durationSeconds"`
	Outputs  []string   `json:"outputs,omitempty"`
}

// Elapsed is the build's duration, or the time so far while it runs.
func (b Build) Elapsed(now time.Time) time.Duration {
	if b.End != nil {
		return b.End.Sub(b.Start)
	}
	return max(now.Sub(b.Start), 0)
}

// Name is a derivation's name: its store path without hash and ".drv".
func Name(drv string) string {
	base := drv[strings.LastIndexByte(drv, '/')+1:]
	if i := strings.IndexByte(base, '-'); i >= 0 {
		base = base[i+1:]
	}
	return strings.TrimSuffix(base, ".drv")
}

// History folds events into builds. Applying the same line twice changes
// nothing (a reader that reopens a rotated log sees lines again).
type History struct {
	builds []Build // in start order
	seen   map[string]bool
	limit  int
}

// NewHistory keeps at most limit finished builds (0: 200).
func NewHistory(limit int) *History {
	if limit <= 0 {
		limit = 200
	}
	return &History{seen: map[string]bool{}, limit: limit}
}

// ApplyLine applies one log line; it returns the build it changed, if any.
// Lines that are not events (a torn write, garbage) are ignored.
func (h *History) ApplyLine(line string) (Build, bool) {
	line = strings.TrimSpace(line)
	if line == "" || h.seen[line] {
		return Build{}, false
	}
	var e Event
	if err := json.Unmarshal([]byte(line), &e); err != nil || !strings.HasSuffix(e.Drv, ".drv") {
		return Build{}, false
	}
	h.seen[line] = true
	return h.Apply(e)
}

// Apply folds one event.
func (h *History) Apply(e Event) (Build, bool) {
	t := fromSeconds(e.Time)
	i := h.running(e.Drv)
	switch e.Event {
	case "start":
		if i >= 0 {
			return Build{}, false // a start seen by both the hook and the loop
		}
		h.builds = append(h.builds, Build{Drv: e.Drv, Name: Name(e.Drv), Outcome: Running, Start: t})
		h.trim()
		return h.builds[len(h.builds)-1], true
	case "success", "failure", "interrupted":
		if i < 0 {
			return Build{}, false // its start was rotated away
		}
		b := &h.builds[i]
		b.End = &t
		b.Duration = math.Round(t.Sub(b.Start).Seconds()*1000) / 1000
		b.Outputs = e.Outputs
		b.Outcome = map[string]string{"success": Succeeded, "failure": Failed, "interrupted": Interrupted}[e.Event]
		done := *b
		h.trim()
		return done, true
	}
	return Build{}, false
}

func (h *History) running(drv string) int {
	for i := len(h.builds) - 1; i >= 0; i-- {
		if h.builds[i].Drv == drv && h.builds[i].Outcome == Running {
			return i
		}
	}
	return -1
}

// trim drops the oldest finished builds beyond the limit.
func (h *History) trim() {
	finished := 0
	for _, b := range h.builds {
		if b.Outcome != Running {
			finished++
		}
	}
	if finished <= h.limit {
		return
	}
	out := h.builds[:0]
	for _, b := range h.builds {
		if b.Outcome != Running && finished > h.limit {
			finished--
			continue
		}
		out = append(out, b)
	}
	h.builds = out
	if len(h.seen) > 20*h.limit {
		h.seen = map[string]bool{} // lines that old are not re-read: the log keeps 2000
	}
}

// Running lists running builds, oldest first, with durations up to now.
func (h *History) Running(now time.Time) []Build {
	var out []Build
	for _, b := range h.builds {
		if b.Outcome == Running {
			b.Duration = math.Round(b.Elapsed(now).Seconds()*1000) / 1000
			out = append(out, b)
		}
	}
	return out
}

// Finished lists up to n finished builds, newest first (by end time).
func (h *History) Finished(n int) []Build {
	var out []Build
	for _, b := range h.builds {
		if b.Outcome != Running {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].End.After(*out[j].End) })
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// Find returns the most recent build of a derivation given by store path,
// by base name, or by name.
func (h *History) Find(what string) (Build, bool) {
	for i := len(h.builds) - 1; i >= 0; i-- {
		b := h.builds[i]
		if b.Drv == what || strings.TrimPrefix(b.Drv, "/nix/store/") == what || b.Name == what {
			return b, true
		}
	}
	return Build{}, false
}

// Read folds a whole log.
func Read(r io.Reader, limit int) (*History, error) {
	h := NewHistory(limit)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		h.ApplyLine(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("reading the build log: %w", err)
	}
	return h, nil
}

// Document is `builds --json`.
type Document struct {
	Schema   int     `json:"schema"`
	Running  []Build `json:"running"`
	Finished []Build `json:"finished"`
}

// Doc renders the history as the JSON document.
func (h *History) Doc(now time.Time, finished int) Document {
	d := Document{Schema: Schema, Running: h.Running(now), Finished: h.Finished(finished)}
	if d.Running == nil {
		d.Running = []Build{}
	}
	if d.Finished == nil {
		d.Finished = []Build{}
	}
	return d
}

// FormatDuration is a short human duration: "850ms", "42s", "3m05s", "1h02m".
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// ValidDrv reports whether s looks like a derivation store path or base
// name (what `builds --log` passes to the builder's shell, quoted anyway).
func ValidDrv(s string) bool {
	s = strings.TrimPrefix(s, "/nix/store/")
	if !strings.HasSuffix(s, ".drv") || len(s) < 34 || s[32] != '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-._?=", c)) {
			return false
		}
	}
	return true
}

func fromSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC().Round(time.Millisecond)
}
