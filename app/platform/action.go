package platform

// ActionNotifier is a Notifier whose notifications run an action when the
// user clicks them (a failed build's notification opens its log). Where a
// platform cannot, the app uses Notify and the menu entry does the same.
type ActionNotifier interface {
	NotifyWithAction(title, body, actionLabel string, onClick func()) error
}
