package trayapp

import (
	"context"
	"strconv"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/builds"
)

// The notified set forgets its oldest keys: a long run (or a flood of
// invented builds) does not grow it.
func TestNotifiedSetBounded(t *testing.T) {
	var k keySet
	for i := 0; i < 10*maxNotified; i++ {
		if !k.add(strconv.Itoa(i)) {
			t.Fatalf("key %d refused", i)
		}
	}
	if len(k.has) != maxNotified || len(k.order) != maxNotified {
		t.Fatalf("set holds %d keys (%d in order)", len(k.has), len(k.order))
	}
	if k.add(strconv.Itoa(10*maxNotified - 1)) {
		t.Error("a recent key added twice")
	}
}

type recordNotifier struct{ got chan string }

func (r recordNotifier) Notify(title, body string) error { r.got <- title + "\n" + body; return nil }

// Builds that waited are told in one notification that counts them.
func TestFlushNoticesCounts(t *testing.T) {
	for _, tc := range []struct {
		failed, finished int
		want             string
	}{
		{12, 0, "12 builds failed\nb0, b1, b2 and 9 more. `wrapix-builder builds` lists them."},
		{0, 2, "2 builds finished\nb0, b1. `wrapix-builder builds` lists them."},
		{1, 3, "1 build failed, 3 finished\nb0, b1, b2 and 1 more. `wrapix-builder builds` lists them."},
	} {
		r := recordNotifier{make(chan string, 1)}
		a := &App{}
		a.Platform.Notifier = r
		for i := 0; i < min(3, tc.failed+tc.finished); i++ {
			a.builds.queued = append(a.builds.queued, builds.Build{Name: "b" + strconv.Itoa(i)})
		}
		a.builds.failedN, a.builds.finishedN, a.builds.flushing = tc.failed, tc.finished, true
		a.flushNotices(context.Background())
		if got := <-r.got; got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
		if a.builds.flushing || a.builds.failedN != 0 || len(a.builds.queued) != 0 {
			t.Errorf("queue not emptied: %+v", a.builds)
		}
	}
}
