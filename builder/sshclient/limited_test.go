package sshclient

import (
	"strings"
	"testing"
)

// What the builder sends is kept up to a bound: past it a write fails (the
// session ends) or, truncating, the rest is dropped.
func TestLimitedBuffer(t *testing.T) {
	b := &LimitedBuffer{Max: 10}
	if _, err := b.Write([]byte("0123456789")); err != nil || b.Over {
		t.Fatalf("within the bound: %v %v", err, b.Over)
	}
	if _, err := b.Write([]byte("x")); err == nil || !b.Over || b.Len() != 10 {
		t.Fatalf("past the bound: %v %v %d", err, b.Over, b.Len())
	}
	tr := &LimitedBuffer{Max: 4, Truncate: true}
	for _, s := range []string{"ab", "\x1b[2J", strings.Repeat("z", 1<<20)} {
		if n, err := tr.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("truncating write: %d %v", n, err)
		}
	}
	if tr.String() != "ab\x1b[" || tr.Line() != "ab [" || !tr.Over {
		t.Fatalf("kept %q, line %q", tr.String(), tr.Line())
	}
}
