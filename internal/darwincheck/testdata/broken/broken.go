//go:build darwin && cgo

// Package broken is a deliberately wrong call into the macOS glue's
// libraries: the darwin type-check must reject it (darwincheck's test).
package broken

// #cgo LDFLAGS: -framework Cocoa
import "C"

import (
	"fyne.io/systray"
	"github.com/progrium/darwinkit/objc"
)

func Broken() {
	systray.SetTitle(42)                            // not a string
	objc.Call[objc.Void](objc.GetClass("X"), "sel") // a string is not a Selector
	_ = C.whatever                                  // unchecked: C is fake
}

// Methods made from Go funcs: self, then one parameter per colon.
func Methods(cls objc.Class) {
	objc.AddMethod(cls, objc.Sel("plus:and:"), func(_ objc.Object, a, b int) int { return a + b }) // right
	objc.AddMethod(cls, objc.Sel("tell:"), func(_ objc.Object, _ objc.Selector, _ objc.Object) {}) // a selector parameter
	objc.AddMethod(cls, objc.Sel("run:"), func(_ objc.Object, done func()) {})                     // a Go func for a block
}
