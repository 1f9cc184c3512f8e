package lifeline

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
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
	if _, err := Hold(context.Background(), path, os.Getuid()); !errors.Is(err, ErrGone) {
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
	if _, err := Hold(context.Background(), plain, os.Getuid()); err == nil {
		t.Errorf("a file that is no socket: %v", err)
	}
}

// Issue 16 review point 4: under sudo, root connected to a root-only socket,
// and its errors told whether a root-only path exists. The socket and its
// directory must be the user's own (the directory writable by nobody else);
// every refusal reads the same.
func TestHoldOnlyTheUsersOwnSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files of other owners")
	}
	const user = 4242
	hidden := filepath.Join(t.TempDir(), "hidden") // root's 0700 directory
	os.Mkdir(hidden, 0o700)
	l, err := net.Listen("unix", filepath.Join(hidden, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	os.WriteFile(filepath.Join(hidden, "exists.txt"), nil, 0o600)
	msg := func(p string) string {
		_, err := Hold(context.Background(), p, user)
		if err == nil {
			t.Fatalf("Hold(%s) for uid %d connected", p, user)
		}
		return strings.ReplaceAll(err.Error(), p, "PATH")
	}
	want := msg(filepath.Join(hidden, "sock"))
	for _, p := range []string{filepath.Join(hidden, "exists.txt"), filepath.Join(hidden, "absent")} {
		if got := msg(p); got != want {
			t.Errorf("the error tells the paths apart: %q vs %q", got, want)
		}
	}
	// The user's socket in a directory others may write to, or root's.
	os.Chown(filepath.Join(hidden, "sock"), user, user)
	os.Chmod(hidden, 0o777)
	msg(filepath.Join(hidden, "sock"))
	os.Chmod(hidden, 0o700)
	msg(filepath.Join(hidden, "sock"))
	select {
	case <-accepted:
		t.Fatal("root connected to a socket that is not the user's own")
	default:
	}
	// The user's own: connects (the listener closes it at once: ErrGone after connecting).
	os.Chown(hidden, user, user)
	Hold(context.Background(), filepath.Join(hidden, "sock"), user)
	<-accepted
}
