package textclean

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestLine(t *testing.T) {
	for in, want := range map[string]string{
		"hello-2.12":                    "hello-2.12",
		"a\x1b]0;pwned\x07b":            "a ]0;pwned b",
		"two\nlines\r\n":                "two lines  ",
		"evil\u202egnp.exe":             "evil gnp.exe",
		"iso\u2066x\u2069 \u200f\u061c": "iso x    ",
		"c1\u009b31m":                   "c1 31m",
		"bad\xffutf8":                   "bad utf8",
		"naïve ✓ 漢字":                    "naïve ✓ 漢字",
		"del\x7f":                       "del ",
		"nix (Nix) 2.31\u2028Your Mac":  "nix (Nix) 2.31 Your Mac",
		"p\u2029z\u200bw\u2060j\ufeffx": "p z w j x",
		"soft\u00adhy\u2064":            "soft hy ",
	} {
		if got := Line(in, 0); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Line("abcdefgh", 5); got != "abcd…" {
		t.Errorf("cut: %q", got)
	}
	if got := Line("abcde", 5); got != "abcde" {
		t.Errorf("not cut: %q", got)
	}
}

func FuzzLine(f *testing.F) {
	f.Add("a\x1b[31mred\u202e\n", 10)
	f.Add("v2.31\u2028fake\u2029\u200b\u2060\ufeff\u00ad", 40)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max % 300
		got := Line(s, max)
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 %q", got)
		}
		for _, r := range got {
			if Hidden(r) || unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Fatalf("Line(%q) kept %U", s, r)
			}
		}
		if max > 0 && utf8.RuneCountInString(got) > max {
			t.Fatalf("Line(%q, %d) = %q: too long", s, max, got)
		}
	})
}
