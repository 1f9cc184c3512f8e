package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/sshclient"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// impostorSSHD runs a real OpenSSH sshd with a host key of its own on
// 127.0.0.1:port, as another user could while serve is down (or before the
// builder publishes container-port). It lets in any key for user builder:
// the host-key check must stop clients before that matters.
func impostorSSHD(t *testing.T, port int, authorized string) {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "host")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{"Port " + strconv.Itoa(port), "ListenAddress 127.0.0.1", "HostKey " + key,
		"AuthorizedKeysFile " + authorized, "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"UsePAM no", "StrictModes no", "PidFile none", ""}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	log := filepath.Join(dir, "log")
	lf, _ := os.Create(log)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(log)
		if strings.Contains(string(data), "Server listening") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the impostor sshd did not start: %s", data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// issue 16.13: another user squats the port Nix connects to while serve is
// down, or pre-binds container-port: root's OpenSSH (configured only by what
// setup wrote) and our Go client both refuse the impostor's host key, and
// start refuses a container-port someone else holds.
func TestImpostorOnThePortIsRefused(t *testing.T) {
	testenv.Require(t, "sshd", "ssh", "ssh-keygen")
	testenv.RequireBuilderUser(t)
	w := testenv.New(t)
	t.Setenv("CONTAINER_STANDIN_MODE", "sshd")
	if r := wb(t, "start"); r.code != 0 {
		t.Fatalf("start: %s", r.stderr)
	}
	root := t.TempDir()
	testenv.HostEtc(t, root, "build-users-group =\nsubstituters =\nmax-jobs = 0\n")
	if r := wb(t, "setup", "--root", root); r.code != 0 {
		t.Fatalf("setup: %s", r.stderr)
	}
	l, err := paths.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keys.Load(l)
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(t.TempDir(), "authorized_keys")
	os.WriteFile(authorized, ssh.MarshalAuthorizedKey(ks.Client.Signer.PublicKey()), 0o644)

	// serve is down; the impostor holds port.
	impostorSSHD(t, w.NixPort, authorized)
	out, err := onHost(t, root, "ssh", "-o", "BatchMode=yes", "wrapix-builder", "echo impostor-reached")
	if err == nil || strings.Contains(string(out), "impostor-reached") || !strings.Contains(string(out), "Host key verification failed") {
		t.Fatalf("root's ssh did not refuse the impostor on port %d: %v\n%s", w.NixPort, err, out)
	}
	goClient := func(port int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := sshclient.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", port), sshclient.User, ks.Client.Signer, ks.Host.Public)
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := goClient(w.NixPort); !errors.Is(err, sshclient.ErrHostKeyMismatch) {
		t.Fatalf("the Go client did not refuse the impostor on port: %v", err)
	}

	// The builder stopped, the impostor takes container-port first.
	if r := wb(t, "stop"); r.code != 0 {
		t.Fatalf("stop: %s", r.stderr)
	}
	impostorSSHD(t, w.Port, authorized)
	if err := goClient(w.Port); !errors.Is(err, sshclient.ErrHostKeyMismatch) {
		t.Fatalf("the Go client did not refuse the impostor on container-port: %v", err)
	}
	r := wb(t, "start")
	oneErrorLine(t, r, 9, "(container-port) is taken by another program")
	if r := wb(t, "ssh", "true"); r.code == 0 || !strings.Contains(r.stderr, "host key") {
		t.Fatalf("`wrapix-builder ssh` against the impostor: %d %s %s", r.code, r.stdout, r.stderr)
	}
}
