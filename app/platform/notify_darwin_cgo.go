//go:build darwin && cgo

package platform

// Native notifications through UNUserNotificationCenter, called with
// darwinkit's objc package (github.com/progrium/darwinkit v0.5.0:
// objc/call.go Call[T] with objc.Void for void methods, objc/class.go
// GetClass, objc/block.go turning Go funcs into ObjC blocks,
// dispatch/queue.go MainQueue().DispatchAsync). Selectors and the bundle
// guard follow ../shared/reference/macos-apis.md §2: an unbundled process
// aborts inside +currentNotificationCenter, so outside an .app bundle the
// osascript fallback is used.

/*
#cgo LDFLAGS: -framework UserNotifications
*/
import "C"

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/objc"
)

const unAuthorizationAlertSound = uint64(1<<2 | 1<<1) // UNAuthorizationOptionAlert | UNAuthorizationOptionSound

type nativeNotifier struct {
	fallback Notifier
	denied   atomic.Bool
	seq      atomic.Int64
	run      string // this run of the app, in notification identifiers
}

// nextID names a notification request. A request with the identifier of
// one still in Notification Center replaces it, so the identifiers of one
// run of the app never repeat those of an earlier run (its counter restarts).
func (n *nativeNotifier) nextID() string {
	return "wrapix-builder-" + n.run + "-" + strconv.FormatInt(n.seq.Add(1), 10)
}

func nativeOrScriptNotifier() Notifier {
	if !canUseNotificationCenter() {
		return scriptNotifier{}
	}
	n := &nativeNotifier{fallback: scriptNotifier{}, run: strconv.FormatInt(time.Now().UnixNano(), 36)}
	dispatch.MainQueue().DispatchAsync(func() {
		objc.WithAutoreleasePool(func() {
			objc.Call[objc.Void](notificationCenter(), objc.Sel("requestAuthorizationWithOptions:completionHandler:"), unAuthorizationAlertSound,
				func(granted bool, _ objc.Object) { // may run on a background thread: touches only the flag
					n.denied.Store(!granted)
				})
		})
	})
	return n
}

// canUseNotificationCenter: the framework is loaded and this is the main
// executable of an .app bundle with a bundle identifier.
func canUseNotificationCenter() bool {
	if objc.GetClass("UNUserNotificationCenter").Ptr() == nil {
		return false
	}
	bundle := objc.Call[objc.Object](objc.GetClass("NSBundle"), objc.Sel("mainBundle"))
	id := objc.Call[string](bundle, objc.Sel("bundleIdentifier"))
	path := objc.Call[string](bundle, objc.Sel("bundlePath"))
	return id != "" && strings.HasSuffix(path, ".app")
}

func notificationCenter() objc.Object {
	return objc.Call[objc.Object](objc.GetClass("UNUserNotificationCenter"), objc.Sel("currentNotificationCenter"))
}

// Notify posts the notification now (nil trigger); a refusal falls back to osascript.
func (n *nativeNotifier) Notify(title, body string) error {
	if n.denied.Load() {
		return n.fallback.Notify(title, body)
	}
	id := n.nextID()
	n.post(id, title, body)
	return nil
}

// post adds the request with identifier id on the main queue (nil trigger:
// now); if the center refuses it, the osascript fallback shows it.
func (n *nativeNotifier) post(id, title, body string) {
	dispatch.MainQueue().DispatchAsync(func() {
		objc.WithAutoreleasePool(func() {
			content := objc.Call[objc.Object](objc.GetClass("UNMutableNotificationContent"), objc.Sel("new"))
			defer content.Release()
			objc.Call[objc.Void](content, objc.Sel("setTitle:"), title)
			objc.Call[objc.Void](content, objc.Sel("setBody:"), body)
			request := objc.Call[objc.Object](objc.GetClass("UNNotificationRequest"),
				objc.Sel("requestWithIdentifier:content:trigger:"), id, content, nil)
			objc.Call[objc.Void](notificationCenter(), objc.Sel("addNotificationRequest:withCompletionHandler:"), request,
				func(err objc.Object) {
					if !err.IsNil() {
						go n.fallback.Notify(title, body)
					}
				})
		})
	})
}
