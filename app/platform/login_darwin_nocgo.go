//go:build darwin && !cgo

package platform

import "errors"

// Without cgo there is no SMAppService (and no menu-bar item either: the
// app needs cgo on a Mac).
func newLoginItem() LoginItem { return noLoginItem{} }

type noLoginItem struct{}

func (noLoginItem) State() LoginState {
	return LoginState{Problem: "needs the app built with cgo"}
}

func (noLoginItem) Set(bool) error { return errors.New("start at login needs the app built with cgo") }
