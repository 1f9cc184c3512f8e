//go:build darwin && cgo

package platform

// Native notifications through UNUserNotificationCenter, called with
// darwinkit's objc package (github.com/progrium/darwinkit v0.5.0:
// objc/call.go Call[T] with objc.Void for void methods, objc/class.go
// GetClass, objc/block.go turning Go funcs into ObjC blocks,
// dispatch/queue.go MainQueue().DispatchAsync). Selectors and the bundle
// guard follow ../shared/reference/macos-apis.md §2: an unbundled process
// aborts inside +currentNotificationCenter, so outside an .app bundle (a
// development run) the osascript fallback is used; inside one, never.

/*
#cgo LDFLAGS: -framework UserNotifications
*/
import "C"

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wrapix/wrapix-builder/builder/codesig"

	"github.com/progrium/darwinkit/dispatch"
	"github.com/progrium/darwinkit/objc"
)

const unAuthorizationAlertSound = uint64(1<<2 | 1<<1) // UNAuthorizationOptionAlert | UNAuthorizationOptionSound

type nativeNotifier struct {
	auth   atomic.Pointer[error] // nil until macOS answers; then nil error (granted) or why not
	seq    atomic.Int64
	run    string // this run of the app, in notification identifiers
	bundle string // our .app, whose signature may be why macOS refuses us
}

// nextID names a notification request. A request with the identifier of
// one still in Notification Center replaces it, so the identifiers of one
// run of the app never repeat those of an earlier run (its counter restarts).
func (n *nativeNotifier) nextID() string {
	return "wrapix-builder-" + n.run + "-" + strconv.FormatInt(n.seq.Add(1), 10)
}

// nativeOrScriptNotifier installs the notification center's delegate and
// asks for authorization at launch (issue 17 point 5): the delegate must be
// in place before a notification's click can arrive — also a click on one
// posted by an earlier run, which relaunches the app
// (UNUserNotificationCenter.h: set it before the app finishes launching).
func nativeOrScriptNotifier() Notifier {
	bundlePath, ok := notificationBundle()
	if !ok {
		return scriptNotifier{}
	}
	n := &nativeNotifier{run: strconv.FormatInt(time.Now().UnixNano(), 36), bundle: bundlePath}
	dispatch.MainQueue().DispatchAsync(func() {
		notifyClicks.ok = installClickDelegate()
		close(notifyClicks.installed)
		objc.WithAutoreleasePool(func() {
			objc.Call[objc.Void](notificationCenter(), objc.Sel("requestAuthorizationWithOptions:completionHandler:"), unAuthorizationAlertSound,
				func(granted bool, nserr objc.Object) { // may run on a background thread: touches only n.auth
					var err error
					switch {
					case granted:
					case nserr.IsNil(): // the user's "Don't Allow" (now or earlier): respected, no other way
						err = ErrNotificationsDenied
					default:
						err = n.authFailed(objc.Call[string](nserr, objc.Sel("localizedDescription")))
					}
					n.auth.Store(&err)
				})
		})
	})
	return n
}

// authFailed is the error for an authorization request macOS refused
// without asking the user: with a bundle not signed as a bundle, that is
// the cause to name.
func (n *nativeNotifier) authFailed(reason string) error {
	if err := codesig.CheckBundle(n.bundle); err != nil {
		return fmt.Errorf("%w: %s (%v); install an app signed as a bundle (the flake's, make app, or the dmg)", ErrNotificationsFailed, reason, err)
	}
	return fmt.Errorf("%w: %s", ErrNotificationsFailed, reason)
}

// authorized is nil when notifications may be posted (or macOS has not
// answered yet: the request is then posted and may be dropped).
func (n *nativeNotifier) authorized() error {
	if p := n.auth.Load(); p != nil {
		return *p
	}
	return nil
}

// notificationBundle is our .app bundle's path, when the framework is
// loaded and this is the main executable of a bundle with an identifier.
func notificationBundle() (string, bool) {
	if objc.GetClass("UNUserNotificationCenter").Ptr() == nil {
		return "", false
	}
	bundle := objc.Call[objc.Object](objc.GetClass("NSBundle"), objc.Sel("mainBundle"))
	id := objc.Call[string](bundle, objc.Sel("bundleIdentifier"))
	path := objc.Call[string](bundle, objc.Sel("bundlePath"))
	return path, id != "" && strings.HasSuffix(path, ".app")
}

func notificationCenter() objc.Object {
	return objc.Call[objc.Object](objc.GetClass("UNUserNotificationCenter"), objc.Sel("currentNotificationCenter"))
}

// Notify posts the notification now (nil trigger). Without authorization
// it says why and shows nothing: the osascript fallback shows nothing on
// macOS 15 either (Script Editor's own permission), and a user's "Don't
// Allow" is theirs.
func (n *nativeNotifier) Notify(title, body string) error {
	if err := n.authorized(); err != nil {
		return err
	}
	id := n.nextID()
	n.post(id, title, body)
	return nil
}

// post adds the request with identifier id on the main queue (nil trigger:
// now); a refusal is recorded as the authorization's answer.
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
				func(nserr objc.Object) {
					if !nserr.IsNil() {
						err := n.authFailed(objc.Call[string](nserr, objc.Sel("localizedDescription")))
						n.auth.CompareAndSwap(nil, &err)
					}
				})
		})
	})
}
