package waker

import (
	"io"
	"net"
	"testing"
)

// listen serves every connection on 127.0.0.1 with handle, each in its own goroutine.
func listen(t testing.TB, handle func(net.Conn)) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln
}

// sink discards what each connection sends, then closes it.
func sink(t testing.TB) net.Listener {
	return listen(t, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
}

// relay is splice behind a listener, as serve runs it.
func relay(t testing.TB, target string) net.Listener {
	return listen(t, func(c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		noDelay(c)
		noDelay(up)
		splice(c, up)
		up.Close()
		c.Close()
	})
}

func push(b *testing.B, addr string, buf []byte, total int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	for sent := 0; sent < total; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	c.Close()
}

// BenchmarkSplice256MB: 256 MB through splice against the same bytes
// straight to the sink (the baseline, same run).
func BenchmarkSplice256MB(b *testing.B) {
	s := sink(b)
	defer s.Close()
	r := relay(b, s.Addr().String())
	defer r.Close()
	buf := make([]byte, 256<<10)
	for _, tc := range []struct{ name, addr string }{{"direct", s.Addr().String()}, {"splice", r.Addr().String()}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(256 << 20)
			for i := 0; i < b.N; i++ {
				push(b, tc.addr, buf, 256<<20)
			}
		})
	}
}
