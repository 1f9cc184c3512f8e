package lifeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A command that connects after the app gave up (its prompt timed out)
// does not go ahead; one the app accepted stops when the app closes its
// end (the app quit).
func TestHold(t *testing.T) {
	s, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	path := s.Path()
	s.StopListening()
	if _, err := Hold(context.Background(), path, -1); !errors.Is(err, ErrGone) {
		t.Errorf("after the app gave up: %v", err)
	}

	s, err = Listen()
	if err != nil {
		t.Fatal(err)
	}
	defer s.StopListening()
	type held struct {
		ctx context.Context
		err error
	}
	got := make(chan held, 1)
	go func() { ctx, err := Hold(context.Background(), s.Path(), os.Getuid()); got <- held{ctx, err} }()
	c := <-s.Connected()
	if err := s.Accept(c); err != nil {
		t.Fatal(err)
	}
	h := <-got
	if h.err != nil {
		t.Fatal(h.err)
	}
	if h.ctx.Err() != nil {
		t.Fatal("ended while the app holds the line")
	}
	c.Close()
	<-h.ctx.Done() // the app closed its end: the command's context ends

	plain := filepath.Join(t.TempDir(), "file")
	os.WriteFile(plain, nil, 0o600)
	if _, err := Hold(context.Background(), plain, -1); err == nil || errors.Is(err, ErrGone) {
		t.Errorf("a file that is no socket: %v", err)
	}
}
