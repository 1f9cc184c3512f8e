package shellquote

import (
	"os/exec"
	"testing"
)

func roundTrip(t *testing.T, args []string) {
	t.Helper()
	// printf '%s\0' <quoted args> through a real shell must give the args back.
	out, err := exec.Command("/bin/sh", "-c", "printf '%s\\0' "+Join(args)).Output()
	if err != nil {
		t.Fatalf("sh: %v (args %q)", err, args)
	}
	var got []string
	start := 0
	for i, b := range out {
		if b == 0 {
			got = append(got, string(out[start:i]))
			start = i + 1
		}
	}
	if len(got) != len(args) {
		t.Fatalf("got %q want %q", got, args)
	}
	for i := range args {
		if got[i] != args[i] {
			t.Fatalf("arg %d: got %q want %q", i, got[i], args[i])
		}
	}
}

func TestQuoteSurvivesAShell(t *testing.T) {
	roundTrip(t, []string{"/home/o'brien $(touch pwned)/x", "a\\b", "`id`", "ünïcødé path", "semi;colon", "new\nline", "-dash", "$HOME", "*", ""})
}

func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "'", "$(x)", "a b", "\\", "\"", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range s {
			if r == 0 {
				return // a NUL cannot be an argument at all
			}
		}
		roundTrip(t, []string{s})
	})
}
