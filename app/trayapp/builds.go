package trayapp

import (
	"context"
	"errors"
	"time"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/platform"
	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
)

// Build activity (docs/builds.md): while the builder is ready, one SSH
// session on the kept-alive connection follows the builder's build event
// log. Lines arrive as builds start and end; nothing is polled.

// MenuTick re-renders elapsed times after the menu opens while builds run.
var (
	MenuTick       = time.Second
	MenuTickWindow = 30 * time.Second // systray reports no close: tick this long after each opening
)

// buildsState is the loop's part of build activity.
type buildsState struct {
	lastFollowed time.Time       // when a follower last saw the log (zero: never)
	notified     map[string]bool // builds already notified (drv@start)
	ticking      bool
}

// followBuilds (its own goroutine) loads the history, then follows new
// events until the connection ends. The history it owns; the loop gets
// snapshots. Builds that ended while no follower ran (the connection lost)
// are notified too, each once; those before the app started are not.
func (a *App) followBuilds(ctx context.Context, c *sshclient.Client) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	h, offset, err := lifecycle.LoadBuilds(lctx, c, 0)
	cancel()
	if errors.Is(err, lifecycle.ErrNoBuildLog) {
		a.post(ctx, func() {
			a.state.BuildsUnknown = true
			a.render()
		})
		return
	}
	if err != nil {
		return
	}
	all := h.Finished(0)
	a.post(ctx, func() {
		var missed []builds.Build
		if since := a.builds.lastFollowed; !since.IsZero() {
			for _, b := range all {
				if b.End.After(since) {
					missed = append(missed, b)
				}
			}
		}
		a.showBuilds(ctx, h.Running(time.Now()), all, missed)
	})
	_ = lifecycle.FollowBuilds(ctx, c, offset, func(line string) {
		b, changed := h.ApplyLine(line)
		if !changed {
			return
		}
		running, finished := h.Running(time.Now()), h.Finished(menu.MaxFinishedShown)
		a.post(ctx, func() { a.showBuilds(ctx, running, finished, []builds.Build{b}) })
	})
	a.post(ctx, func() {
		a.builds.lastFollowed = time.Now()
		a.state.Running = nil // unknown until a connection reads the log again
		a.render()
	})
}

// showBuilds (on the loop) puts builds into the menu and notifies the
// finished ones among changed.
func (a *App) showBuilds(ctx context.Context, running, finished, changed []builds.Build) {
	a.state.BuildsUnknown = false
	a.state.Running = running
	a.state.Finished = finished[:min(len(finished), menu.MaxFinishedShown)]
	a.builds.lastFollowed = time.Now()
	if a.builds.notified == nil {
		a.builds.notified = map[string]bool{}
	}
	a.render()
	for _, b := range changed {
		key := b.Drv + "@" + b.Start.String()
		if b.Outcome == builds.Running || a.builds.notified[key] {
			continue
		}
		a.builds.notified[key] = true
		a.notifyBuild(ctx, b)
	}
}

// notifyBuild: a failed build always (its click opens the log); a finished
// one when it took longer than notify-after.
func (a *App) notifyBuild(ctx context.Context, b builds.Build) {
	took := builds.FormatDuration(b.Elapsed(time.Now()))
	switch {
	case b.Outcome == builds.Failed:
		title := "Build failed: " + b.Name
		plain := "It failed on the builder after " + took + ". Its log: the menu's entry, or `wrapix-builder builds --log " + b.Name + "`."
		an, ok := a.Platform.Notifier.(platform.ActionNotifier)
		if !ok {
			a.notify(title, plain)
			return
		}
		drv := b.Drv
		go func() {
			err := an.NotifyWithAction(title, "It failed on the builder after "+took+". Click to see its log.", "Show log",
				func() { a.post(ctx, func() { a.openBuildLog(ctx, drv) }) })
			if err != nil {
				a.notify(title, plain)
			}
		}()
	case b.Outcome == builds.Succeeded && a.Builder != nil && a.Builder.Config.NotifyAfter > 0 && b.Elapsed(time.Now()) >= a.Builder.Config.NotifyAfter:
		a.notify("Build finished: "+b.Name, "It took "+took+" on the builder.")
	}
}

// openBuildLog opens a terminal running `wrapix-builder builds --log DRV`.
func (a *App) openBuildLog(ctx context.Context, drv string) {
	if a.Builder == nil {
		return
	}
	argv := a.cliArgs("builds", "--log", drv)
	a.quick(ctx, "Cannot open a terminal", func() error { return a.Platform.Terminal.Open("build-log", argv) })
}

// clickFinished opens the log of the finished build a menu entry shows.
func (a *App) clickFinished(ctx context.Context, i int) {
	if i < len(a.state.Finished) {
		a.openBuildLog(ctx, a.state.Finished[i].Drv)
	}
}

// menuOpened ticks the running builds' elapsed times for a while.
func (a *App) menuOpened(ctx context.Context) {
	if a.builds.ticking || len(a.state.Running) == 0 {
		return
	}
	a.builds.ticking = true
	a.goWork(func() {
		t := time.NewTicker(MenuTick)
		defer t.Stop()
		end := time.After(MenuTickWindow)
		defer a.post(ctx, func() { a.builds.ticking = false })
		for {
			select {
			case <-ctx.Done():
				return
			case <-end:
				return
			case <-t.C:
				a.post(ctx, func() {
					if len(a.state.Running) > 0 {
						a.render()
					}
				})
			}
		}
	})
}
