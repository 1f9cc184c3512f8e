package lock

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/problem"
)

func TestSecondHolderWaitsThenGivesUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), "builder.lock")
	l, err := Acquire(context.Background(), path, "start", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var told string
	_, err = Acquire(ctx, path, "stop", func(h string) { told = h })
	if !problem.Is(err, problem.Conflict) || !strings.Contains(told, "start, pid") {
		t.Fatalf("err %v, told %q", err, told)
	}
	l.Release()
	l2, err := Acquire(context.Background(), path, "stop", nil)
	if err != nil {
		t.Fatal("lock not released:", err)
	}
	l2.Release()
}
