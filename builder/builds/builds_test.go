package builds

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

const log = `{"event":"start","drv":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv","time":100.5}
{"event":"start","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv","time":101}
not json at all
{"event":"start","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv","time":101.2}
{"event":"success","drv":"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv","outputs":["/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12"],"time":104.75}
{"event":"failure","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv","time":106}
{"event":"start","drv":"/nix/store/dddddddddddddddddddddddddddddddd-slow.drv","time":107}
{"event":"success","drv":"/nix/store/ffffffffffffffffffffffffffffffff-rotated-away.drv","time":108}
`

func TestFold(t *testing.T) {
	h, err := Read(strings.NewReader(log), 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(110, 0)
	run := h.Running(now)
	if len(run) != 1 || run[0].Name != "slow" || run[0].Duration != 3 || run[0].End != nil {
		t.Fatalf("running: %+v", run)
	}
	fin := h.Finished(0)
	if len(fin) != 2 || fin[0].Name != "broken" || fin[0].Outcome != Failed || fin[0].Duration != 5 {
		t.Fatalf("finished: %+v", fin)
	}
	if fin[1].Name != "hello-2.12" || fin[1].Outcome != Succeeded || fin[1].Duration != 4.25 || len(fin[1].Outputs) != 1 {
		t.Fatalf("hello: %+v", fin[1])
	}
	// Re-reading the same lines (a rotated log reopened) changes nothing.
	for _, l := range strings.Split(log, "\n") {
		if b, changed := h.ApplyLine(l); changed {
			t.Fatalf("replayed line changed %+v", b)
		}
	}
	if b, ok := h.Find("broken"); !ok || b.Outcome != Failed {
		t.Fatalf("find by name: %+v", b)
	}
	if _, ok := h.Find("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv"); !ok {
		t.Fatal("find by base name")
	}
	// The same derivation built again is a new build.
	h.ApplyLine(`{"event":"start","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv","time":120}`)
	if len(h.Running(now)) != 2 || len(h.Finished(0)) != 2 {
		t.Fatalf("rebuild: %+v", h.Doc(now, 0))
	}
}

func TestLimit(t *testing.T) {
	h := NewHistory(3)
	for i := 0; i < 10; i++ {
		drv := "/nix/store/" + strings.Repeat(string(rune('a'+i)), 32) + "-x.drv"
		h.Apply(Event{Event: "start", Drv: drv, Time: float64(i)})
		h.Apply(Event{Event: "success", Drv: drv, Time: float64(i) + 0.5})
	}
	if f := h.Finished(0); len(f) != 3 || f[0].Start.Unix() != 9 {
		t.Fatalf("kept %+v", f)
	}
}

func TestValidDrv(t *testing.T) {
	good := []string{"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-broken.drv", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a+b_c.drv"}
	bad := []string{"broken", "/nix/store/x-broken.drv", "/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-e.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-.drv"[:44] + "/x.drv",
		"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-" + strings.Repeat("x", 212) + ".drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a\x1b[2Jb.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a\u202eb.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a;rm -rf.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-$(x).drv", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x"}
	for _, s := range good {
		if !ValidDrv(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range bad {
		if ValidDrv(s) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{850 * time.Millisecond: "850ms", 42 * time.Second: "42s", 185 * time.Second: "3m05s", 3720 * time.Second: "1h02m"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("%s: %q, want %q", d, got, want)
		}
	}
}

// Events whose derivation is not a store path, unknown events, times out of
// range and outputs that are not store paths are dropped: nothing the
// builder writes reaches a terminal or the menu unchecked.
func TestHostileEventsDropped(t *testing.T) {
	const hash = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	bad := []string{
		`{"event":"start","drv":"/nix/store/` + hash + `-$(touch${IFS}/tmp/pwned).drv","time":1}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-x\u001b]0;title\u0007.drv","time":1}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-line\nbreak.drv","time":1}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-evil\u202egnp.drv","time":1}`,
		`{"event":"start","drv":"/tmp/` + hash + `-elsewhere.drv","time":1}`,
		`{"event":"start","drv":"` + hash + `-relative.drv","time":1}`,
		`{"event":"start","drv":"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-nothash.drv","time":1}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-notadrv","time":1}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-future.drv","time":1e300}`,
		`{"event":"start","drv":"/nix/store/` + hash + `-past.drv","time":-5}`,
		`{"event":"explode","drv":"/nix/store/` + hash + `-unknown.drv","time":1}`,
	}
	h := NewHistory(0)
	for _, l := range bad {
		if b, ok := h.ApplyLine(l); ok {
			t.Errorf("accepted %s: %+v", l, b)
		}
	}
	drv := "/nix/store/" + hash + "-ok.drv"
	h.ApplyLine(`{"event":"start","drv":"` + drv + `","time":1}`)
	b, ok := h.ApplyLine(`{"event":"success","drv":"` + drv + `","outputs":["/nix/store/` + hash + `-ok","/nix/store/` + hash + `-o\u001b[31m","$(rm)"],"time":2}`)
	if !ok || len(b.Outputs) != 1 || b.Outputs[0] != "/nix/store/"+hash+"-ok" {
		t.Fatalf("outputs not filtered: %+v", b)
	}
}

// A line longer than MaxLine is skipped without ending the read; the lines
// after it count.
func TestLongLinesSkipped(t *testing.T) {
	drv := "/nix/store/" + strings.Repeat("a", 32) + "-after.drv"
	in := strings.Repeat("x", 3*MaxLine) + "\n" + `{"event":"start","drv":"` + drv + `","time":1}` + "\n" +
		`{"event":"start","drv":"/nix/store/` + strings.Repeat("b", 32) + `-long.drv","outputs":["` + strings.Repeat("y", MaxLine) + `"],"time":1}` + "\n"
	h, err := Read(strings.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := h.Running(time.Unix(2, 0)); len(r) != 1 || r[0].Drv != drv {
		t.Fatalf("running: %+v", r)
	}
}

// 80 000 start events: the history keeps MaxRunning, the newest, and takes
// linear time (BenchmarkHistoryStarts measures it).
func TestRunningBounded(t *testing.T) {
	h := NewHistory(0)
	lines := startLines(80000)
	start := time.Now()
	for _, l := range lines {
		h.ApplyLine(l)
	}
	took := time.Since(start)
	r := h.Running(time.Unix(1e6, 0))
	if len(r) != MaxRunning || r[len(r)-1].Name != "build-79999" || r[0].Name != "build-"+strconv.Itoa(80000-MaxRunning) {
		t.Fatalf("kept %d running, first %+v", len(r), r[0])
	}
	// Ends of dropped builds change nothing; ends of kept ones finish them.
	if _, ok := h.Apply(Event{Event: "failure", Drv: drvN(0), Time: 1e5}); ok {
		t.Error("the end of a dropped build changed the history")
	}
	if b, ok := h.Apply(Event{Event: "failure", Drv: drvN(79999), Time: 1e5}); !ok || b.Outcome != Failed {
		t.Errorf("end of a kept build: %+v", b)
	}
	if took > 20*time.Second {
		t.Errorf("80 000 starts took %s", took)
	}
}

// Finished builds: at most the limit, newest first even when ends arrive
// out of order.
func TestFinishedOrderAndLimit(t *testing.T) {
	h := NewHistory(3)
	for i, end := range []float64{10, 30, 20, 40, 5} {
		h.Apply(Event{Event: "start", Drv: drvN(i), Time: 1})
		h.Apply(Event{Event: "success", Drv: drvN(i), Time: end})
	}
	var ends []int64
	for _, b := range h.Finished(0) {
		ends = append(ends, b.End.Unix())
	}
	if fmt.Sprint(ends) != "[40 30 20]" {
		t.Fatalf("finished ends %v", ends)
	}
	if f := h.Finished(2); len(f) != 2 || f[0].End.Unix() != 40 {
		t.Fatalf("Finished(2): %+v", f)
	}
}

func drvN(i int) string {
	// 32 characters of nix-base32: a prefix of a's and the number.
	n := strconv.Itoa(i)
	return "/nix/store/" + strings.Repeat("a", 32-len(n)) + n + "-build-" + n + ".drv"
}

func startLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = `{"event":"start","drv":"` + drvN(i) + `","time":` + strconv.Itoa(1000+i) + "}"
	}
	return lines
}

// BenchmarkHistoryStarts folds 80 000 start events (what a hostile log can
// hold), against its baseline: decoding the same lines' JSON alone, which
// any reader pays. Before bounding the history (issue 16, point 10) the fold
// took 36 s; linear, it costs about as much as the decoding.
func BenchmarkHistoryStarts(b *testing.B) {
	lines := startLines(80000)
	var fold, parse time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for _, l := range lines {
			var e Event
			_ = json.Unmarshal([]byte(l), &e)
		}
		t1 := time.Now()
		h := NewHistory(0)
		for _, l := range lines {
			h.ApplyLine(l)
		}
		fold += time.Since(t1)
		parse += t1.Sub(t0)
	}
	b.ReportMetric(fold.Seconds()/float64(b.N), "fold-s")
	b.ReportMetric(parse.Seconds()/float64(b.N), "baseline-decode-s")
	b.ReportMetric(math.Round(100*fold.Seconds()/parse.Seconds())/100, "fold/decode")
}
