package keys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// What root reads for setup: never through a link, never a FIFO (no hang),
// never more than maxKeyFile bytes, only files the named user owns, and the
// bytes handed back are exactly the ones parsed.
func TestLoadOwnedRefusesWhatRootMustNotRead(t *testing.T) {
	l := layout(t)
	s, err := Ensure(l)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(s.Client.PrivatePath)
	got, err := LoadOwned(l, os.Getuid())
	if err != nil || !bytes.Equal(got.Client.PrivateBytes, want) {
		t.Fatalf("LoadOwned: %v (bytes equal: %v)", err, err == nil && bytes.Equal(got.Client.PrivateBytes, want))
	}
	priv := s.Client.PrivatePath
	os.Rename(priv, priv+".real")
	restore := func() { os.Remove(priv); os.Rename(priv+".real", priv) }
	for _, tc := range []struct {
		name, want string
		make       func()
	}{
		{"symlink", "symbolic link", func() { os.Symlink(priv+".real", priv) }},
		{"fifo", "not a regular file", func() { syscall.Mkfifo(priv, 0o600) }},
		{"huge", "larger than", func() { os.WriteFile(priv, bytes.Repeat([]byte("A"), maxKeyFile+1), 0o600) }},
		{"another owner", "not owned by uid 4242", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := os.Getuid()
			if tc.make != nil {
				tc.make()
				defer os.Remove(priv)
			} else {
				os.Rename(priv+".real", priv)
				defer os.Rename(priv, priv+".real")
				os.Chown(l.KeysDir(), 4242, -1)
				defer os.Chown(l.KeysDir(), os.Getuid(), -1)
				uid = 4242
			}
			_, err := LoadOwned(l, uid)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	restore()
	// A key directory others may write to is refused.
	os.Chmod(l.KeysDir(), 0o777)
	if _, err := LoadOwned(l, AnyOwner); err == nil || !strings.Contains(err.Error(), "mode 0777") {
		t.Fatalf("group/other-writable key dir: %v", err)
	}
	os.Chmod(l.KeysDir(), 0o700)
	// The key directory itself as a link is refused.
	link := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(link, 0o700)
	os.Symlink(l.KeysDir(), filepath.Join(link, "builder-keys"))
	l2 := l
	l2.DataDir = link
	if _, err := LoadOwned(l2, AnyOwner); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("linked key dir: %v", err)
	}
}
