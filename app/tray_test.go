package main

// The real tray (fyne.io/systray over a private D-Bus, in this process),
// read back through com.canonical.dbusmenu as a desktop shell reads it.

import (
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/app/menu"
	"github.com/wrapix/wrapix-builder/app/tray"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// Before anything is rendered, the items carry the first model's titles,
// never their IDs; and of many models rendered at once from many
// goroutines, the newest decided one is what the menu shows.
func TestTrayInitialTitlesAndNewestModelWins(t *testing.T) {
	testenv.Require(t, "dbus-daemon")
	addr, b := startBus(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr) // systray connects to the session bus once, when it starts
	initial := menu.Render(menu.State{})
	ready := make(chan *tray.Tray, 1)
	go tray.Run(initial, func(tr *tray.Tray) { ready <- tr })
	var tr *tray.Tray
	select {
	case tr = <-ready:
	case <-time.After(15 * time.Second):
		t.Fatal("the tray never became ready")
	}
	t.Cleanup(tr.Quit)

	items := b.waitMenu(t, 15*time.Second, "the first layout", nil, func(items []menuItem) bool { return len(items) > 0 })
	var labels []string
	for _, it := range items {
		if it.label != "" {
			labels = append(labels, it.label)
		}
		for _, id := range menu.Order {
			if id != "" && it.label == id {
				t.Errorf("item %d shows its ID %q before the first render", it.id, id)
			}
		}
	}
	if s, ok := find(items, "Builder: checking…"); !ok || s.enabled {
		t.Errorf("the status line is not the initial one: %q", labels)
	}
	if q, ok := find(items, "Quit Wrapix Builder"); !ok || !q.enabled {
		t.Errorf("Quit is not there from the start: %q", labels)
	}

	// Many models at once: model i says "Builder: model i" and was decided i-th.
	const n = 200
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := 1; i <= n; i++ {
		m := menu.Render(menu.State{})
		it := m.Items[menu.StatusLine]
		it.Title = fmt.Sprintf("Builder: model %d", i)
		m.Items[menu.StatusLine] = it
		m.Seq = uint64(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			time.Sleep(time.Duration(rand.Intn(2000)) * time.Microsecond)
			tr.Render(m)
		}()
	}
	close(gate)
	wg.Wait()
	items = b.waitMenu(t, 10*time.Second, "a rendered model", nil, statusIs("Builder: model "))
	if s, _ := find(items, "Builder: model"); s.label != fmt.Sprintf("Builder: model %d", n) {
		t.Fatalf("the menu shows %q, not the newest model %d", s.label, n)
	}
}
