// Package textclean makes text that came from the builder safe to show: in
// a terminal, a menu item or a notification. A compromised builder can
// write anything into what the Mac reads (docs/builds.md), so nothing it
// sends reaches a screen with escape sequences, line breaks or bidi
// overrides in it.
package textclean

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Hidden reports whether r must not be shown as is: C0 and C1 control
// characters (ESC starts terminal escape sequences; CR and LF break lines),
// DEL, and every format character and line or paragraph separator (Unicode's
// Cf, Zl, Zp): the bidi controls that reorder what follows them (U+061C,
// U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), the zero-width ones
// (U+200B–U+200D, U+2060–U+2064, U+FEFF) and U+2028/U+2029, which break a
// line in menus and notifications.
func Hidden(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
		return true
	}
	return false
}

// Line is s on one line: each hidden character (and invalid UTF-8) becomes
// a space, runs of spaces stay as they are, and the result keeps at most max
// runes (0: no limit), ending in "…" when cut.
func Line(s string, max int) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || Hidden(r) {
			clean = false
			break
		}
	}
	cut := max > 0 && utf8.RuneCountInString(s) > max
	if clean && !cut {
		return s
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if cut && n == max-1 {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || Hidden(r) {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
