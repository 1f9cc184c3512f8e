// Package builds turns the builder's build event log (written inside the
// builder by the entrypoint and Nix's post-build hook, docs/builds.md) into
// the list of running and finished builds that the CLI, status and the app
// show.
package builds

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"slices"
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

// Bounds on what the builder's log can make the Mac hold (the builder is
// untrusted: a compromised build is root there and writes what it likes).
const (
	MaxLine    = 64 << 10 // longer lines are not events (skipped, never buffered whole)
	MaxRunning = 256      // running builds kept; beyond, the oldest are dropped (the builder runs at most max-jobs at once)
	MaxOutputs = 64       // output paths kept per build
	seenLines  = 4096     // lines remembered for re-reads (the entrypoint keeps the last 2000)
)

// History folds events into builds. Applying the same line twice changes
// nothing (a reader that reopens a rotated log sees lines again). Every
// event costs O(1) (amortized) and the history holds at most MaxRunning
// running and limit finished builds, whatever the log says.
type History struct {
	running  []Build        // in start order; ended ones are tombstones (Outcome "")
	live     map[string]int // running drv → its index in running
	finished []Build        // by end time, oldest first, at most limit
	limit    int
	seed     maphash.Seed
	seen     map[uint64]bool // hashes of the last seenLines applied lines
	seenRing []uint64
	seenNext int
}

// NewHistory keeps at most limit finished builds (0: 200).
func NewHistory(limit int) *History {
	if limit <= 0 {
		limit = 200
	}
	return &History{live: map[string]int{}, limit: limit, seed: maphash.MakeSeed(), seen: map[uint64]bool{}}
}

// ApplyLine applies one log line; it returns the build it changed, if any.
// Lines that are not valid events (a torn write, garbage, a path that is no
// derivation) are ignored.
func (h *History) ApplyLine(line string) (Build, bool) {
	if len(line) > MaxLine {
		return Build{}, false
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return Build{}, false
	}
	sum := maphash.String(h.seed, line)
	if h.seen[sum] {
		return Build{}, false
	}
	var e Event
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		return Build{}, false
	}
	h.remember(sum)
	return h.Apply(e)
}

func (h *History) remember(sum uint64) {
	if len(h.seenRing) < seenLines {
		h.seenRing = append(h.seenRing, sum)
	} else {
		delete(h.seen, h.seenRing[h.seenNext])
		h.seenRing[h.seenNext] = sum
		h.seenNext = (h.seenNext + 1) % seenLines
	}
	h.seen[sum] = true
}

// valid: a known event about a derivation's store path at a plausible time.
// Outputs that are not store paths are dropped.
func (e *Event) valid() bool {
	switch e.Event {
	case "start", "success", "failure", "interrupted":
	default:
		return false
	}
	if !strings.HasPrefix(e.Drv, StoreDir) || !ValidDrv(e.Drv) || math.IsNaN(e.Time) || e.Time < 0 || e.Time > maxTime {
		return false
	}
	var outs []string
	for _, o := range e.Outputs {
		if len(outs) < MaxOutputs && ValidStorePath(o) {
			outs = append(outs, o)
		}
	}
	e.Outputs = outs
	return true
}

// maxTime (seconds since the epoch) is far in the future (year 5138) but
// keeps durations finite.
const maxTime = 1e11

// Apply folds one event; invalid ones change nothing.
func (h *History) Apply(e Event) (Build, bool) {
	if !e.valid() {
		return Build{}, false
	}
	t := fromSeconds(e.Time)
	i, isRunning := h.live[e.Drv]
	switch e.Event {
	case "start":
		if isRunning {
			return Build{}, false // a start seen by both the hook and the loop
		}
		b := Build{Drv: e.Drv, Name: Name(e.Drv), Outcome: Running, Start: t}
		h.live[e.Drv] = len(h.running)
		h.running = append(h.running, b)
		h.trimRunning()
		return b, true
	case "success", "failure", "interrupted":
		if !isRunning {
			return Build{}, false // its start was rotated away
		}
		b := h.running[i]
		h.running[i] = Build{}
		delete(h.live, e.Drv)
		b.End = &t
		b.Duration = math.Round(t.Sub(b.Start).Seconds()*1000) / 1000
		b.Outputs = e.Outputs
		b.Outcome = map[string]string{"success": Succeeded, "failure": Failed, "interrupted": Interrupted}[e.Event]
		h.addFinished(b)
		h.compact()
		return b, true
	}
	return Build{}, false
}

// trimRunning drops the oldest running builds beyond MaxRunning (their end
// will not be shown: a builder runs far fewer at once).
func (h *History) trimRunning() {
	for j := 0; len(h.live) > MaxRunning && j < len(h.running); j++ {
		if b := h.running[j]; b.Outcome == Running {
			delete(h.live, b.Drv)
			h.running[j] = Build{}
		}
	}
	h.compact()
}

// compact drops the tombstones once they are half of running, so each
// event costs O(1) amortized.
func (h *History) compact() {
	if len(h.running) < 2*len(h.live)+16 {
		return
	}
	out := h.running[:0]
	for _, b := range h.running {
		if b.Outcome == Running {
			h.live[b.Drv] = len(out)
			out = append(out, b)
		}
	}
	clear(h.running[len(out):])
	h.running = out
}

// addFinished inserts b by end time (in order already but for clock steps).
// The oldest beyond the limit go in halves, so each insert costs O(1)
// amortized; Finished shows only the newest limit.
func (h *History) addFinished(b Build) {
	i := len(h.finished)
	for i > 0 && h.finished[i-1].End.After(*b.End) {
		i--
	}
	if len(h.finished)-i >= h.limit {
		return // older than everything shown
	}
	h.finished = slices.Insert(h.finished, i, b)
	if len(h.finished) >= 2*h.limit {
		h.finished = slices.Delete(h.finished, 0, len(h.finished)-h.limit)
	}
}

// Running lists running builds, oldest first, with durations up to now.
func (h *History) Running(now time.Time) []Build {
	out := make([]Build, 0, len(h.live))
	for _, b := range h.running {
		if b.Outcome == Running {
			b.Duration = math.Round(b.Elapsed(now).Seconds()*1000) / 1000
			out = append(out, b)
		}
	}
	return out
}

// Finished lists up to n finished builds, newest first (by end time).
func (h *History) Finished(n int) []Build {
	if n <= 0 || n > h.limit {
		n = h.limit
	}
	n = min(n, len(h.finished))
	out := make([]Build, 0, n)
	for i := len(h.finished) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, h.finished[i])
	}
	return out
}

// Find returns the most recent build of a derivation given by store path,
// by base name, or by name: a running one first, then the finished ones,
// newest first.
func (h *History) Find(what string) (Build, bool) {
	match := func(b Build) bool {
		return b.Drv == what || strings.TrimPrefix(b.Drv, StoreDir) == what || b.Name == what
	}
	for i := len(h.running) - 1; i >= 0; i-- {
		if b := h.running[i]; b.Outcome == Running && match(b) {
			return b, true
		}
	}
	for i := len(h.finished) - 1; i >= max(len(h.finished)-h.limit, 0); i-- {
		if b := h.finished[i]; match(b) {
			return b, true
		}
	}
	return Build{}, false
}

// Read folds a log. Lines longer than MaxLine are skipped, so memory stays
// bounded whatever r holds.
func Read(r io.Reader, limit int) (*History, error) {
	h := NewHistory(limit)
	if err := ScanLines(r, func(l string) { h.ApplyLine(l) }); err != nil {
		return h, fmt.Errorf("reading the build log: %w", err)
	}
	return h, nil
}

// ScanLines calls fn with each line of r (without its newline) that is at
// most MaxLine bytes long; longer ones are skipped without being held. A
// last line without a newline counts.
func ScanLines(r io.Reader, fn func(string)) error {
	br := bufio.NewReaderSize(r, MaxLine+1)
	skipping := false
	for {
		l, err := br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull:
			skipping = true // the line goes on beyond MaxLine
			continue
		case skipping:
			skipping = false // the long line ends here
		case len(l) > 0:
			fn(strings.TrimSuffix(string(l), "\n"))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
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

// StoreDir is the builder's store directory.
const StoreDir = "/nix/store/"

// ValidDrv reports whether s is a derivation's store path or base name
// (what `builds --log` passes to the builder's shell, quoted anyway), with a
// name besides ".drv".
func ValidDrv(s string) bool {
	return strings.HasSuffix(s, ".drv") && ValidStorePath(StoreDir+strings.TrimPrefix(s, StoreDir)) && Name(s) != ""
}

// ValidStorePath reports whether s is a store path: /nix/store/, 32
// characters of Nix's base-32 alphabet, "-", and a name of 1 to 211
// characters from [A-Za-z0-9+-._?=] (NixOS/nix src/libstore/path.cc,
// checkName; nix-base32 omits e, o, u and t).
func ValidStorePath(s string) bool {
	base, ok := strings.CutPrefix(s, StoreDir)
	if !ok || len(base) < 34 || base[32] != '-' || len(base)-33 > 211 {
		return false
	}
	for _, c := range []byte(base[:32]) {
		if !strings.ContainsRune(nixBase32, rune(c)) {
			return false
		}
	}
	for _, c := range []byte(base[33:]) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("+-._?=", c) >= 0) {
			return false
		}
	}
	return true
}

const nixBase32 = "0123456789abcdfghijklmnpqrsvwxyz"

func fromSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC().Round(time.Millisecond)
}
