//go:build darwin && cgo

package platform

// Start at login through SMAppService.mainAppService (ServiceManagement,
// macOS 13+; the bundle's LSMinimumSystemVersion is 15): it names the app
// bundle itself, not a binary path, so a Nix store path that a rebuild
// replaces or an App Translocation path is never recorded, and its status is
// the system's real state (Login Items in System Settings). Called with
// darwinkit's objc package (github.com/progrium/darwinkit v0.5.0: objc/call.go
// Call[T], which panics on a nil receiver, hence the class guard; NSError**
// out-parameters as a heap slot, as in macos/foundation's generated code).
// Selectors and status values: ../shared/reference/macos-apis.md §4.1.

/*
#cgo LDFLAGS: -framework ServiceManagement
*/
import "C"

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/progrium/darwinkit/objc"
)

// SMAppServiceStatus values.
const (
	smNotRegistered    = 0
	smEnabled          = 1
	smRequiresApproval = 2
	smNotFound         = 3
)

// legacyAgent is where versions before SMAppService wrote a LaunchAgent
// running the binary's own (unstable) path.
func legacyAgent() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "Library", "LaunchAgents", "org.wrapix.builder.plist")
}

type appService struct{ problem string }

func newLoginItem() LoginItem {
	s := appService{problem: bundleProblem()}
	// Replace an old LaunchAgent by the SMAppService registration, keeping the user's choice.
	if _, err := os.Stat(legacyAgent()); err == nil && s.problem == "" {
		if s.Set(true) == nil {
			_ = os.Remove(legacyAgent())
		}
	}
	return s
}

// bundleProblem: SMAppService needs this process to be an .app bundle's
// main executable, and fails ("Operation not permitted", status notFound)
// for a translocated one (a quarantined download run where it lies).
func bundleProblem() string {
	if objc.GetClass("SMAppService").Ptr() == nil {
		return "needs macOS 13 or later"
	}
	var path, id string
	objc.WithAutoreleasePool(func() {
		bundle := objc.Call[objc.Object](objc.GetClass("NSBundle"), objc.Sel("mainBundle"))
		path = objc.Call[string](bundle, objc.Sel("bundlePath"))
		id = objc.Call[string](bundle, objc.Sel("bundleIdentifier"))
	})
	switch {
	case id == "" || !strings.HasSuffix(path, ".app"):
		return "needs the Wrapix Builder app bundle"
	case strings.Contains(path, "/AppTranslocation/"):
		return "move Wrapix Builder to Applications first"
	}
	return ""
}

func mainAppService() objc.Object {
	return objc.Call[objc.Object](objc.GetClass("SMAppService"), objc.Sel("mainAppService"))
}

func (s appService) status() int {
	var st int
	objc.WithAutoreleasePool(func() { st = objc.Call[int](mainAppService(), objc.Sel("status")) })
	return st
}

func (s appService) State() LoginState {
	if s.problem != "" {
		return LoginState{Problem: s.problem}
	}
	switch s.status() {
	case smEnabled:
		return LoginState{On: true}
	case smRequiresApproval:
		return LoginState{Pending: true}
	}
	return LoginState{}
}

// Set registers or unregisters the app. Asking again for a registration
// that waits for the user's approval opens System Settings › Login Items
// instead: registering again would only repeat the system's prompt.
func (s appService) Set(on bool) error {
	if s.problem != "" {
		return errors.New("start at login " + s.problem)
	}
	st := s.status()
	var err error
	objc.WithAutoreleasePool(func() {
		svc := mainAppService()
		switch {
		case on && st == smRequiresApproval:
			objc.Call[objc.Void](objc.GetClass("SMAppService"), objc.Sel("openSystemSettingsLoginItems"))
		case on && st != smEnabled:
			err = callWithError(svc, "registerAndReturnError:")
		case !on && (st == smEnabled || st == smRequiresApproval):
			err = callWithError(svc, "unregisterAndReturnError:")
		}
	})
	return err
}

// callWithError sends a `- (BOOL)…AndReturnError:(NSError **)` message.
// The BOOL is read from a full word (libffi on arm64 stores the whole
// register: macos-apis.md §1.4) and the NSError slot lives on the heap.
func callWithError(o objc.Object, sel string) error {
	errp := new(unsafe.Pointer)
	if uint8(objc.Call[uint64](o, objc.Sel(sel), unsafe.Pointer(errp))) != 0 {
		return nil
	}
	msg := "failed"
	if *errp != nil {
		msg = objc.Call[string](objc.ObjectFrom(*errp), objc.Sel("localizedDescription"))
	}
	return errors.New("SMAppService " + strings.TrimSuffix(sel, "AndReturnError:") + ": " + msg)
}
