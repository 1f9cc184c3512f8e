package keys

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/problem"
)

func layout(t *testing.T) paths.Layout {
	d := t.TempDir()
	return paths.Layout{DataDir: filepath.Join(d, "data"), ConfigDir: filepath.Join(d, "config")}
}

func mode(t *testing.T, p string) os.FileMode {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestEnsureCreatesPrivateKeysOpenSSHReads(t *testing.T) {
	l := layout(t)
	s, err := Ensure(l)
	if err != nil {
		t.Fatal(err)
	}
	if m := mode(t, l.KeysDir()); m != 0o700 {
		t.Errorf("keys dir mode %o", m)
	}
	for _, p := range []Pair{s.Host, s.Client} {
		if m := mode(t, p.PrivatePath); m != 0o600 {
			t.Errorf("%s mode %o", p.PrivatePath, m)
		}
		// Real OpenSSH reads both halves and agrees on the fingerprint.
		out, err := exec.Command("ssh-keygen", "-l", "-f", p.PublicPath).CombinedOutput()
		if err != nil || !strings.Contains(string(out), p.Fingerprint()) || !strings.Contains(string(out), "(ED25519)") {
			t.Errorf("ssh-keygen -l %s: %v %s", p.PublicPath, err, out)
		}
		out, err = exec.Command("ssh-keygen", "-y", "-f", p.PrivatePath).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), p.AuthorizedLine()+" ") {
			t.Errorf("ssh-keygen -y %s: %v %q", p.PrivatePath, err, out)
		}
	}
	// The guest sees the host key and the client *public* key only.
	entries, _ := os.ReadDir(l.GuestDir())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	clientPriv, _ := os.ReadFile(s.Client.PrivatePath)
	for _, n := range names {
		data, _ := os.ReadFile(filepath.Join(l.GuestDir(), n))
		if bytes.Equal(data, clientPriv) || bytes.Contains(data, []byte("PRIVATE KEY")) && n != GuestHostKey {
			t.Errorf("guest/%s carries a private key that is not the host key", n)
		}
	}
	if strings.Join(names, ",") != "authorized_keys,ssh_host_ed25519_key,ssh_host_ed25519_key.pub" {
		t.Errorf("guest dir has %v", names)
	}
	// Idempotent: same keys the second time.
	s2, err := Ensure(l)
	if err != nil || s2.Host.Fingerprint() != s.Host.Fingerprint() || s2.Client.Fingerprint() != s.Client.Fingerprint() {
		t.Fatalf("keys changed on second Ensure: %v", err)
	}
}

func TestUnsafeKeysAreRefusedNotReplaced(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(t *testing.T, s *Set)
		want  string
	}{
		{"world-readable", func(t *testing.T, s *Set) { os.Chmod(s.Client.PrivatePath, 0o644) }, "unsafe permissions 0644"},
		{"group-readable host", func(t *testing.T, s *Set) { os.Chmod(s.Host.PrivatePath, 0o640) }, "unsafe permissions 0640"},
		{"corrupt", func(t *testing.T, s *Set) { os.WriteFile(s.Client.PrivatePath, []byte("garbage"), 0o600) }, "corrupt"},
		{"missing private", func(t *testing.T, s *Set) { os.Remove(s.Host.PrivatePath) }, "is missing"},
		{"mismatched pub", func(t *testing.T, s *Set) {
			other, _ := os.ReadFile(s.Host.PublicPath)
			os.WriteFile(s.Client.PublicPath, other, 0o644)
		}, "does not match"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := layout(t)
			s, err := Ensure(l)
			if err != nil {
				t.Fatal(err)
			}
			tc.spoil(t, s)
			before := snapshot(t, l.KeysDir())
			_, err = Ensure(l)
			if err == nil || problem.KindOf(err) != problem.Keys || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "fix:") {
				t.Fatalf("got %v", err)
			}
			if after := snapshot(t, l.KeysDir()); after != before {
				t.Fatalf("key files changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestMissingPublicIsDerived(t *testing.T) {
	l := layout(t)
	s, _ := Ensure(l)
	os.Remove(s.Client.PublicPath)
	s2, err := Ensure(l)
	if err != nil || s2.Client.Fingerprint() != s.Client.Fingerprint() {
		t.Fatalf("%v", err)
	}
	if _, err := os.Stat(s.Client.PublicPath); err != nil {
		t.Fatal("pub not re-derived")
	}
}

func TestLoadNeverCreates(t *testing.T) {
	l := layout(t)
	if _, err := Load(l); err == nil || !strings.Contains(err.Error(), "wrapix-builder start") {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(l.KeysDir()); err == nil {
		t.Fatal("Load created the keys dir")
	}
}

func TestEnsureFixesDirMode(t *testing.T) {
	l := layout(t)
	Ensure(l)
	os.Chmod(l.KeysDir(), 0o755)
	if _, err := Ensure(l); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, l.KeysDir()); m != 0o700 {
		t.Fatalf("mode %o", m)
	}
}

func TestRotateKeepsOldKeys(t *testing.T) {
	l := layout(t)
	s, _ := Ensure(l)
	oldHost, _ := os.ReadFile(s.Host.PrivatePath)
	backup, err := Rotate(l, Which{Host: true}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(filepath.Join(backup, HostName))
	if err != nil || !bytes.Equal(kept, oldHost) {
		t.Fatalf("old host key not kept in %s: %v", backup, err)
	}
	s2, err := Load(l)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Host.Fingerprint() == s.Host.Fingerprint() {
		t.Error("host key not rotated")
	}
	if s2.Client.Fingerprint() != s.Client.Fingerprint() {
		t.Error("client key rotated though not asked")
	}
	guest, _ := os.ReadFile(filepath.Join(l.GuestDir(), GuestHostKey))
	now, _ := os.ReadFile(s2.Host.PrivatePath)
	if !bytes.Equal(guest, now) {
		t.Error("guest dir not refreshed after rotation")
	}
}

func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(p + " " + fi.Mode().String() + " " + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}
