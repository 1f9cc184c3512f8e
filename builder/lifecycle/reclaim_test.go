package lifecycle

import (
	"strings"
	"testing"
)

// What the copy container prints names the builder's files: nothing but
// printable text reaches the terminal.
func TestPlainStripsControlAndBidi(t *testing.T) {
	got := plain("copy of \x1b]0;pwned\x07evil\u202egnp.exe failed" + strings.Repeat("x", 300))
	if strings.ContainsAny(got, "\x1b\x07\u202e") || len([]rune(got)) > 202 || !strings.HasPrefix(got, "copy of ?]0;pwned?evil?gnp.exe") {
		t.Errorf("%q", got)
	}
}

// The two numbers from `stat -f -c '%S %b %f'`; anything else is refused.
func TestParseStatFS(t *testing.T) {
	if n, err := parseStatFS("4096 134217728 134000000\n"); err != nil || n != (134217728-134000000)*4096 {
		t.Errorf("%d %v", n, err)
	}
	for _, bad := range []string{"", "4096 10", "0 10 5", "4096 10 11", "4096 -1 0", "x y z", "4096 9223372036854775807 0"} {
		if _, err := parseStatFS(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
