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

// A deliberately broken call is caught; references into C are not checked.
func TestBrokenCallFails(t *testing.T) {
	var out strings.Builder
	n, err := check([]string{"./testdata/broken"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if n != 2 || !strings.Contains(got, "as string value in argument to systray.SetTitle") || !strings.Contains(got, "as objc.Selector value") || strings.Contains(got, "whatever") {
		t.Fatalf("%d errors:\n%s", n, got)
	}
}
