package textclean

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// Issue 16 review point 6: the builder's log bytes reached the terminal raw.
// Through Terminal, however the bytes are split across writes, no hidden
// character but newline and tab comes out, and all text does.
func TestTerminalStreams(t *testing.T) {
	in := "build\x1b]52;c;cHduZWQ=\x07 ok\r\n\ttab ✓ 漢字\x1b[2J\u202eevil\u2028sep\u009b1m\x9b\xffend\n"
	want := "build]52;c;cHduZWQ= ok\n\ttab ✓ 漢字[2Jevilsep1m\uFFFD\uFFFDend\n"
	for _, size := range []int{1, 2, 3, 5, len(in)} {
		var out bytes.Buffer
		w := Terminal(&out)
		for i := 0; i < len(in); i += size {
			n, err := w.Write([]byte(in[i:min(i+size, len(in))]))
			if err != nil || n != min(size, len(in)-i) {
				t.Fatalf("write: %d %v", n, err)
			}
		}
		w.Close()
		if out.String() != want {
			t.Errorf("chunks of %d: %q, want %q", size, out.String(), want)
		}
	}
	var out bytes.Buffer
	w := Terminal(&out)
	w.Write([]byte("cut \xe6\xbc"))
	w.Close()
	if out.String() != "cut \uFFFD" {
		t.Errorf("an unfinished sequence at the end: %q", out.String())
	}
}

func FuzzTerminal(f *testing.F) {
	f.Add("a\x1b[31mred\u202e\n\u2028\ufeff", 3)
	f.Fuzz(func(t *testing.T, s string, size int) {
		size = 1 + abs(size)%64
		var out bytes.Buffer
		w := Terminal(&out)
		for i := 0; i < len(s); i += size {
			w.Write([]byte(s[i:min(i+size, len(s))]))
		}
		w.Close()
		got := out.String()
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		for _, r := range got {
			if r != '\n' && r != '\t' && Hidden(r) {
				t.Fatalf("Terminal(%q) kept %U", s, r)
			}
		}
		if strings.Count(got, "\n") != strings.Count(s, "\n") {
			t.Fatalf("Terminal(%q) = %q: lines changed", s, got)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
