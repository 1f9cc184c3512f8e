package trayapp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/platform"
	"github.com/wrapix/wrapix-builder/builder/builds"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	"github.com/wrapix/wrapix-builder/builder/shellquote"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/builder/textclean"
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
	lastFollowed time.Time // when a follower last saw the log (zero: never)
	notified     keySet    // builds already notified (drv@start)
	ticking      bool

	// At most one build notification per NotifyEvery: builds that end
	// within it are told together when it is over.
	lastNotice time.Time
	queued     []builds.Build // the first few waiting
	failedN    int            // how many wait, by kind
	finishedN  int
	flushing   bool // a flush is scheduled
}

// NotifyEvery spaces build notifications: a burst of failures (a broken
// dependency fails hundreds of builds, or a compromised builder invents
// them) makes one notification, "12 builds failed", not one each.
var NotifyEvery = 5 * time.Second

// maxNotified bounds the notified set: a build is re-offered only while it
// is among the history's last 200 finished ones.
const maxNotified = 1024

// keySet is a set that forgets its oldest keys beyond maxNotified.
type keySet struct {
	has   map[string]bool
	order []string
}

func (k *keySet) add(key string) bool {
	if k.has[key] {
		return false
	}
	if k.has == nil {
		k.has = map[string]bool{}
	}
	if len(k.order) >= maxNotified {
		delete(k.has, k.order[0])
		k.order = k.order[1:]
	}
	k.has[key] = true
	k.order = append(k.order, key)
	return true
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
	all, running := h.Finished(0), h.Running(time.Now())
	a.post(ctx, func() {
		var missed []builds.Build
		if since := a.builds.lastFollowed; !since.IsZero() {
			for _, b := range all {
				if b.End.After(since) {
					missed = append(missed, b)
				}
			}
		}
		a.showBuilds(ctx, running, all, missed, 0)
	})
	// Lines can come faster than the loop renders (a flood): the follower
	// folds them and hands the loop one update at a time, with every
	// finished build since the last (the history is the follower's, under
	// mu). Past maxNotified of them, failures are only counted.
	var mu sync.Mutex
	var ended []builds.Build
	moreFailed := 0
	pending := false
	update := func() {
		mu.Lock()
		running, finished, changed, more := h.Running(time.Now()), h.Finished(menu.MaxFinishedShown), ended, moreFailed
		ended, moreFailed, pending = nil, 0, false
		mu.Unlock()
		a.showBuilds(ctx, running, finished, changed, more)
	}
	_ = lifecycle.FollowBuilds(ctx, c, offset, func(line string) {
		mu.Lock()
		b, changed := h.ApplyLine(line)
		switch {
		case !changed || b.Outcome == builds.Running:
		case len(ended) < maxNotified:
			ended = append(ended, b)
		case b.Outcome == builds.Failed:
			moreFailed++
		}
		post := changed && !pending
		pending = pending || changed
		mu.Unlock()
		if post {
			a.post(ctx, update)
		}
	})
	a.post(ctx, func() {
		a.builds.lastFollowed = time.Now()
		a.state.Running = nil // unknown until a connection reads the log again
		a.render()
	})
}

// showBuilds (on the loop) puts builds into the menu and notifies the
// finished ones among changed, each once, and moreFailed failures beyond.
func (a *App) showBuilds(ctx context.Context, running, finished, changed []builds.Build, moreFailed int) {
	a.state.BuildsUnknown = false
	a.state.Running = running
	a.state.Finished = finished[:min(len(finished), menu.MaxFinishedShown)]
	a.builds.lastFollowed = time.Now()
	a.render()
	for _, b := range changed {
		if !a.notifiable(b) || !a.builds.notified.add(b.Drv+"@"+b.Start.String()) {
			continue
		}
		a.queueNotice(ctx, b)
	}
	if moreFailed > 0 {
		a.builds.failedN += moreFailed
		a.scheduleFlush(ctx)
	}
}

// notifiable: a failed build always (its click opens the log); a finished
// one when it took longer than notify-after.
func (a *App) notifiable(b builds.Build) bool {
	switch b.Outcome {
	case builds.Failed:
		return true
	case builds.Succeeded:
		return a.Builder != nil && a.Builder.Config.NotifyAfter > 0 && b.Elapsed(time.Now()) >= a.Builder.Config.NotifyAfter
	}
	return false
}

// queueNotice notifies b now, or with the others when NotifyEvery has passed
// since the last build notification.
func (a *App) queueNotice(ctx context.Context, b builds.Build) {
	st := &a.builds
	if !st.flushing && time.Since(st.lastNotice) >= NotifyEvery {
		st.lastNotice = time.Now()
		a.notifyBuild(ctx, b)
		return
	}
	if len(st.queued) < 3 {
		st.queued = append(st.queued, b)
	}
	if b.Outcome == builds.Failed {
		st.failedN++
	} else {
		st.finishedN++
	}
	a.scheduleFlush(ctx)
}

func (a *App) scheduleFlush(ctx context.Context) {
	if st := &a.builds; !st.flushing {
		st.flushing = true
		time.AfterFunc(time.Until(st.lastNotice.Add(NotifyEvery)), func() { a.post(ctx, func() { a.flushNotices(ctx) }) })
	}
}

// flushNotices tells the builds that waited: one as usual, more in one
// notification that names a few and counts the rest.
func (a *App) flushNotices(ctx context.Context) {
	st := &a.builds
	queued, failed, finished := st.queued, st.failedN, st.finishedN
	st.queued, st.failedN, st.finishedN, st.flushing = nil, 0, 0, false
	st.lastNotice = time.Now()
	if failed+finished == 1 && len(queued) == 1 {
		a.notifyBuild(ctx, queued[0])
		return
	}
	count := func(n int) string {
		if n == 1 {
			return "1 build"
		}
		return strconv.Itoa(n) + " builds"
	}
	var title string
	switch {
	case finished == 0:
		title = count(failed) + " failed"
	case failed == 0:
		title = count(finished) + " finished"
	default:
		title = count(failed) + " failed, " + strconv.Itoa(finished) + " finished"
	}
	var names []string
	for _, b := range queued {
		names = append(names, b.Name)
	}
	body := strings.Join(names, ", ")
	if more := failed + finished - len(names); more > 0 && len(names) > 0 {
		body += " and " + strconv.Itoa(more) + " more"
	}
	if body != "" {
		body = textclean.Line(body, 200) + ". "
	}
	a.notify(title, body+"`wrapix-builder builds` lists them.")
}

// notifyBuild tells one build that finished.
func (a *App) notifyBuild(ctx context.Context, b builds.Build) {
	took := builds.FormatDuration(b.Elapsed(time.Now()))
	name := textclean.Line(b.Name, 80) // a valid store path's name already: no control characters
	if b.Outcome != builds.Failed {
		a.notify("Build finished: "+name, "It took "+took+" on the builder.")
		return
	}
	title := "Build failed: " + name
	plain := "It failed on the builder after " + took + ". Its log: the menu's entry, or `wrapix-builder builds --log " + shellquote.Quote(b.Name) + "`."
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
