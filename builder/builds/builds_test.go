package builds

import (
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
{"event":"success","drv":"/nix/store/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-rotated-away.drv","time":108}
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
	bad := []string{"broken", "/nix/store/x-broken.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a;rm -rf.drv", "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-$(x).drv", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x"}
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
