//go:build darwin && !cgo

package platform

func nativeOrScriptNotifier() Notifier { return scriptNotifier{} }
