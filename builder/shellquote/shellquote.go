// Package shellquote quotes arguments for POSIX shells, so that no path —
// spaces, quotes, $(…), backslashes, unicode — can break a command or inject one.
package shellquote

import "strings"

// safe reports whether s needs no quoting at all.
func safe(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("/._-+=:,@%", r):
		default:
			return false
		}
	}
	return true
}

// Quote returns s as one shell word: unchanged when it is plainly safe, else
// in single quotes, where nothing is special except the quote itself.
func Quote(s string) string {
	if safe(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes each argument and joins them with spaces.
func Join(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
