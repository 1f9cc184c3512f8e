package lifecycle

import (
	"context"
	"net"
	"testing"
)

// The forwarder without its permission accepts, then resets: that must
// read as resetAfterAccept, not as "no answer".
func TestSSHGreetingSeesAcceptThenReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	for i := 0; i < 5; i++ {
		if g := sshGreeting(context.Background(), ln.Addr().String()); g != resetAfterAccept {
			t.Fatalf("attempt %d: %v, want resetAfterAccept", i, g)
		}
	}
}
