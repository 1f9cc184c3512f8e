package builds

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// FuzzRead: whatever the builder writes into its event log, reading it
// neither fails nor panics, keeps its bounds, and every build it yields has
// a valid derivation path, a name fit to show, and encodes as JSON.
func FuzzRead(f *testing.F) {
	f.Add(log)
	f.Add(`{"event":"start","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x\u001b[2J.drv","time":1}` + "\n")
	f.Add(`{"event":"success","drv":"/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-a.drv","outputs":["$(x)"],"time":1e308}`)
	f.Add(strings.Repeat("{", 1000))
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Read(strings.NewReader(in), 3)
		if err != nil {
			t.Fatal(err)
		}
		// Replaying every line (a rotated log reopened) changes nothing.
		for _, l := range strings.Split(in, "\n") {
			if b, ok := h.ApplyLine(l); ok && b.Outcome == Running {
				if _, again := h.ApplyLine(l); again {
					t.Fatalf("line applied twice: %q", l)
				}
			}
		}
		d := h.Doc(time.Unix(1e9, 0), 0)
		if len(d.Running) > MaxRunning || len(d.Finished) > 3 {
			t.Fatalf("unbounded: %d running, %d finished", len(d.Running), len(d.Finished))
		}
		for _, b := range append(d.Running, d.Finished...) {
			if !ValidDrv(b.Drv) || !strings.HasPrefix(b.Drv, StoreDir) || textclean.Line(b.Name, 0) != b.Name || b.Name == "" {
				t.Fatalf("unsafe build %+v", b)
			}
			for _, o := range b.Outputs {
				if !ValidStorePath(o) {
					t.Fatalf("unsafe output %q", o)
				}
			}
		}
		if _, err := json.Marshal(d); err != nil {
			t.Fatalf("document does not encode: %v", err)
		}
	})
}
