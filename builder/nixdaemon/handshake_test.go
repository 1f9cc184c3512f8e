package nixdaemon

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/textclean"
)

// A real nix-daemon (Debian's), serving a store in a temporary directory.
func TestHandshakeWithRealDaemon(t *testing.T) {
	if _, err := exec.LookPath("nix-daemon"); err != nil {
		t.Fatal("nix-daemon is required (apt-get install nix-bin)")
	}
	root := t.TempDir()
	cmd := exec.Command("nix-daemon", "--stdio")
	cmd.Env = append(os.Environ(), "NIX_REMOTE=local?root="+filepath.Join(root, "store"), "NIX_CONFIG=build-users-group =", "HOME="+root)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	info, err := Handshake(struct {
		io.Reader
		io.Writer
	}{out, in})
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if info.Protocol == "" || info.Version == "" {
		t.Fatalf("%+v", info)
	}
}

func TestHandshakeRefusesNonDaemons(t *testing.T) {
	for name, reply := range map[string][]byte{
		"not a daemon": []byte("SSH-2.0-OpenSSH_9.2\r\n..."),
		"too old":      append(u64(workerMagic2), u64(1<<8|10)...),
		"eof":          nil,
	} {
		_, err := Handshake(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(reply), io.Discard})
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

// FuzzHandshake: whatever the builder answers, the handshake ends (on a
// finite answer) without panicking, and the version it reports is fit to show.
func FuzzHandshake(f *testing.F) {
	good := append(u64(workerMagic2), u64(1<<8|35)...)
	good = append(append(good, u64(5)...), []byte("2.8.0\x00\x00\x00")...)
	good = append(append(good, u64(1)...), u64(stderrLast)...)
	f.Add(good)
	f.Add(append(u64(workerMagic2), u64(1<<8|34)...))
	f.Add([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
	f.Fuzz(func(t *testing.T, reply []byte) {
		info, _ := Handshake(struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(reply), io.Discard})
		if textclean.Line(info.Version, 100) != info.Version {
			t.Fatalf("version %q not clean", info.Version)
		}
	})
}
