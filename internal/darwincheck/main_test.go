package main

import (
	"strings"
	"testing"
)

// The project's darwin+cgo glue type-checks for darwin/arm64.
func TestGlueTypeChecks(t *testing.T) {
	var out strings.Builder
	n, err := check([]string{"github.com/wrapix/wrapix-builder/..."}, &out)
	if err != nil || n != 0 {
		t.Fatalf("%d errors, %v:\n%s", n, err, out.String())
	}
}

// Deliberately broken calls are caught — wrong types, and Go funcs for
// objc.AddMethod with a selector parameter or a func for a block (which
// would crash at run time) — a right one is not; references into C are not checked.
func TestBrokenCallFails(t *testing.T) {
	var out strings.Builder
	n, err := check([]string{"./testdata/broken"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if n != 5 || !strings.Contains(got, "as string value in argument to systray.SetTitle") || !strings.Contains(got, "as objc.Selector value") || strings.Contains(got, "whatever") ||
		!strings.Contains(got, `"tell:": the Go func takes 3 parameters, want 2`) || !strings.Contains(got, `"tell:": parameter 2 is an objc.Selector`) ||
		!strings.Contains(got, `"run:": parameter 2 is a Go func`) || strings.Contains(got, "plus:and:") {
		t.Fatalf("%d errors:\n%s", n, got)
	}
}
