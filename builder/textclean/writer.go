package textclean

import (
	"io"
	"unicode/utf8"
)

// Terminal returns a writer that passes what it is given to w without the
// characters Hidden reports, except newline and tab: the builder's logs
// (`logs`, `builds --log`) go to a terminal line by line, but no escape
// sequence (OSC 52 sets the clipboard, OSC 8 hides links), carriage return
// or bidi control reaches it. Invalid UTF-8 becomes U+FFFD. It streams: at
// most an unfinished UTF-8 sequence (3 bytes) is held between writes, and
// Close writes what is left.
func Terminal(w io.Writer) io.WriteCloser { return &terminal{w: w} }

type terminal struct {
	w       io.Writer
	pending []byte // the start of a UTF-8 sequence the next write completes
	buf     []byte
}

func (t *terminal) Write(p []byte) (int, error) {
	in := p
	if len(t.pending) > 0 {
		in = append(t.pending, p...)
		t.pending = nil
	}
	t.buf = t.buf[:0]
	for len(in) > 0 {
		r, n := utf8.DecodeRune(in)
		if r == utf8.RuneError && n <= 1 && !utf8.FullRune(in) {
			t.pending = append([]byte(nil), in...) // at most 3 bytes
			break
		}
		switch {
		case r == utf8.RuneError && n <= 1:
			t.buf = utf8.AppendRune(t.buf, utf8.RuneError)
		case r == '\n' || r == '\t' || !Hidden(r):
			t.buf = append(t.buf, in[:n]...)
		}
		in = in[n:]
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	if cap(t.buf) > 64<<10 {
		t.buf = nil // a large write's buffer is not kept
	}
	return len(p), nil
}

// Close writes an unfinished sequence left at the end as U+FFFD.
func (t *terminal) Close() error {
	if len(t.pending) == 0 {
		return nil
	}
	t.pending = nil
	_, err := t.w.Write([]byte(string(utf8.RuneError)))
	return err
}
