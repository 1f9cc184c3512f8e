//go:build darwin && cgo

package platform

// Clicks on native notifications reach the app through the notification
// center's delegate: UNUserNotificationCenterDelegate's
// userNotificationCenter:didReceiveNotificationResponse:withCompletionHandler:
// (UserNotifications/UNUserNotificationCenter.h), implemented by an NSObject
// subclass made with darwinkit's objc package (v0.5.0 objc/class.go
// AllocateClass/RegisterClass; objc/call.go AddMethod: the Go function takes
// self and then the method's arguments — NO selector, whatever AddMethod's
// doc comment says: wrapGoFuncAsMethodIMP maps Go parameter i to ObjC
// argument i+1 and objc/class_test.go Test_AddMethod declares
// func(o Object, v1, v2 int) for "plus:and:"; a selector parameter would
// shift every argument by one and send -notification to the completion
// block, an uncaught ObjC exception. Blocks arrive as objc.Block and are
// called with objc/block.go CallBlock). The delegate also answers
// willPresentNotification: without it the center silences a notification
// that arrives while the app is active (its menu open). The center holds
// its delegate weakly; the instance is never released.

import (
	"errors"
	"sync"

	"github.com/progrium/darwinkit/objc"
)

// errNoActions: this notifier cannot run actions here; notify plainly.
var errNoActions = errors.New("notification actions are not available")

// unPresentBannerListSound: UNNotificationPresentationOptionBanner (1<<4) |
// List (1<<3) | Sound (1<<1), macOS 11+ (UNUserNotificationCenter.h).
const unPresentBannerListSound = uint64(1<<4 | 1<<3 | 1<<1)

var notifyClicks = struct {
	installed chan struct{} // closed once installClickDelegate ran (at launch)
	ok        bool
	delegate  objc.Object
	mu        sync.Mutex
	pending   map[string]func()
	order     []string // pending's ids, oldest first
}{installed: make(chan struct{})}

// maxPendingClicks bounds the actions kept for notifications nobody clicks
// (Notification Center keeps only recent ones anyway).
const maxPendingClicks = 64

// installClickDelegate runs on the main queue. A failure (a panic in the
// reflection that builds the method) leaves clicks unhandled, never the app down.
func installClickDelegate() (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	cls := objc.AllocateClass(objc.GetClass("NSObject"), "WrapixBuilderNotificationDelegate", 0)
	objc.AddMethod(cls, objc.Sel("userNotificationCenter:didReceiveNotificationResponse:withCompletionHandler:"),
		func(_ objc.Object, _ objc.Object, response objc.Object, done objc.Block) {
			request := objc.Call[objc.Object](objc.Call[objc.Object](response, objc.Sel("notification")), objc.Sel("request"))
			id := objc.Call[string](request, objc.Sel("identifier"))
			notifyClicks.mu.Lock()
			f := notifyClicks.pending[id]
			delete(notifyClicks.pending, id)
			notifyClicks.mu.Unlock()
			if f != nil {
				go f()
			}
			objc.CallBlock[objc.Void](done)
		})
	objc.AddMethod(cls, objc.Sel("userNotificationCenter:willPresentNotification:withCompletionHandler:"),
		func(_ objc.Object, _ objc.Object, _ objc.Object, done objc.Block) {
			objc.CallBlock[objc.Void](done, unPresentBannerListSound)
		})
	objc.RegisterClass(cls)
	d := objc.Call[objc.Object](cls.CreateInstance(0), objc.Sel("init"))
	objc.Call[objc.Void](notificationCenter(), objc.Sel("setDelegate:"), d)
	notifyClicks.delegate = d
	notifyClicks.pending = map[string]func(){}
	return true
}

// NotifyWithAction posts a notification whose click runs onClick. Where
// the native center cannot be used it returns an error: the caller then
// posts a plain notification.
func (n *nativeNotifier) NotifyWithAction(title, body, _ string, onClick func()) error {
	if err := n.authorized(); err != nil {
		return err
	}
	<-notifyClicks.installed // on the main queue at launch; never called from it
	if !notifyClicks.ok {
		return errNoActions
	}
	id := n.nextID()
	notifyClicks.mu.Lock()
	notifyClicks.pending[id] = onClick
	notifyClicks.order = append(notifyClicks.order, id)
	if len(notifyClicks.order) > maxPendingClicks {
		delete(notifyClicks.pending, notifyClicks.order[0])
		notifyClicks.order = notifyClicks.order[1:]
	}
	notifyClicks.mu.Unlock()
	n.post(id, title, body)
	return nil
}
