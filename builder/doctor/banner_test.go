package doctor

import (
	"context"
	"net"
	"strings"
	"testing"
)

// serveBanner answers each connection with banner.
func serveBanner(t *testing.T, banner string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); c.Write([]byte(banner)) }()
		}
	}()
	return l.Addr().String()
}

// The builder's SSH banner is untrusted: shown on one clean line, and a
// "banner" longer than SSH allows (255 bytes) is no SSH server.
func TestBannerUntrusted(t *testing.T) {
	c := checkBanner(context.Background(), serveBanner(t, "SSH-2.0-OpenSSH\x1b]0;pwned\x07 \u202eevil\r\n"))
	if c.Result != OK || strings.ContainsAny(c.Detail, "\x1b\x07\u202e\r\n") {
		t.Errorf("hostile banner: %s %q", c.Result, c.Detail)
	}
	c = checkBanner(context.Background(), serveBanner(t, "SSH-2.0-"+strings.Repeat("x", 1<<20)+"\r\n"))
	if c.Result != Fail || len(c.Detail) > 500 {
		t.Errorf("1 MiB banner: %s %q", c.Result, c.Detail[:min(len(c.Detail), 80)])
	}
}
