package lifecycle

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

// GCResult is what a garbage collection did.
type GCResult struct {
	Before, After, Cap int64
	Collected          bool
}

// GC brings the builder's store under capBytes by collecting garbage on the
// builder, oldest-unreferenced first as Nix does. Nix's own min-free would
// measure the wrong disk (the Mac's, over VirtioFS), so the cap is on the
// store's size. The builder's own tools are GC roots and stay.
func (b *Builder) GC(ctx context.Context, capBytes int64) (GCResult, error) {
	res := GCResult{Cap: capBytes}
	c, err := b.Dial(ctx)
	if err != nil {
		return res, problem.Wrap(problem.KindOf(err), err, "cannot connect to the builder", "is it running? `wrapix-builder status`")
	}
	defer c.Close()
	size := func() (int64, error) {
		out, err := c.Output(ctx, "du -sk /nix/store")
		if err != nil {
			return 0, err
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			return 0, fmt.Errorf("unexpected du output %q", out)
		}
		kib, err := strconv.ParseInt(f[0], 10, 64)
		return kib << 10, err
	}
	if res.Before, err = size(); err != nil {
		return res, problem.Wrap(problem.Unhealthy, err, "cannot measure the builder's store", "")
	}
	res.After = res.Before
	if res.Before <= capBytes {
		return res, nil
	}
	b.say("store is %s, over its cap of %s: collecting garbage…", config.HumanSize(res.Before), config.HumanSize(capBytes))
	if _, err := c.Output(ctx, "nix-store --gc --max-freed "+strconv.FormatInt(res.Before-capBytes, 10)); err != nil {
		return res, problem.Wrap(problem.Unhealthy, err, "garbage collection on the builder failed", "read `wrapix-builder logs`")
	}
	res.Collected = true
	if res.After, err = size(); err != nil {
		return res, problem.Wrap(problem.Unhealthy, err, "cannot measure the builder's store", "")
	}
	return res, nil
}
