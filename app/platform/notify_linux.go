package platform

import (
	"sync"

	"github.com/godbus/dbus/v5"
)

// Clicks on freedesktop notifications arrive as the ActionInvoked signal
// (Desktop Notifications Specification 1.2, "Signals"): "default" is the
// click on the notification itself. One match on the session bus; the
// goroutine sleeps until a signal comes (nothing polled).
var notifyActions struct {
	once    sync.Once
	mu      sync.Mutex
	pending map[uint32]func()
	err     error
}

func listenForActions(conn *dbus.Conn) error {
	notifyActions.once.Do(func() {
		notifyActions.pending = map[uint32]func(){}
		notifyActions.err = conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.Notifications"), dbus.WithMatchObjectPath("/org/freedesktop/Notifications"))
		if notifyActions.err != nil {
			return
		}
		ch := make(chan *dbus.Signal, 16)
		conn.Signal(ch)
		go func() {
			for sig := range ch {
				if len(sig.Body) < 1 {
					continue
				}
				id, ok := sig.Body[0].(uint32)
				if !ok {
					continue
				}
				notifyActions.mu.Lock()
				f := notifyActions.pending[id]
				switch sig.Name {
				case "org.freedesktop.Notifications.ActionInvoked":
					delete(notifyActions.pending, id)
				case "org.freedesktop.Notifications.NotificationClosed":
					delete(notifyActions.pending, id)
					f = nil
				default:
					f = nil
				}
				notifyActions.mu.Unlock()
				if f != nil {
					go f()
				}
			}
		}()
	})
	return notifyActions.err
}

// NotifyWithAction shows a notification whose click (the "default" action)
// runs onClick.
func (dbusNotifier) NotifyWithAction(title, body, actionLabel string, onClick func()) error {
	conn, err := dbus.SessionBus()
	if err != nil {
		return err
	}
	if err := listenForActions(conn); err != nil {
		return err
	}
	var id uint32
	obj := conn.Object("org.freedesktop.Notifications", "/org/freedesktop/Notifications")
	// Registered under the lock: a click can come before Call returns here.
	notifyActions.mu.Lock()
	defer notifyActions.mu.Unlock()
	err = obj.Call("org.freedesktop.Notifications.Notify", 0,
		"Wrapix Builder", uint32(0), "", title, body, []string{"default", actionLabel}, map[string]dbus.Variant{}, int32(-1)).Store(&id)
	if err != nil {
		return err
	}
	notifyActions.pending[id] = onClick
	return nil
}
