// Package keys owns the builder's two SSH key pairs: the host key the
// builder's sshd presents (pinned everywhere we connect from) and the client
// key we log in with. Keys are ed25519 in OpenSSH format, private files 0600
// in a 0700 directory. A key is never replaced without the user asking
// (Rotate): a new host key breaks every trust entry made with the old one.
package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/wrapix/wrapix-builder/builder/atomicfile"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/problem"
	"github.com/wrapix/wrapix-builder/builder/shellquote"
)

// File names inside builder-keys/ and its guest/ subdirectory.
const (
	HostName       = "host_ed25519"
	ClientName     = "client_ed25519"
	GuestHostKey   = "ssh_host_ed25519_key" // the host private key, for the guest's sshd
	GuestAuthKeys  = "authorized_keys"      // the client public key, for the builder user
	hostComment    = "wrapix-builder-host"
	clientComment  = "wrapix-builder-client"
	rotateFix      = "wrapix-builder keys rotate"
	backupDirName  = "old"
	privateFileMod = 0o600
)

// Pair is one key pair on disk.
type Pair struct {
	PrivatePath  string
	PublicPath   string
	PrivateBytes []byte // exactly the bytes that were checked and parsed: setup copies these, never re-reads the file
	Signer       ssh.Signer
	Public       ssh.PublicKey
}

// AuthorizedLine is the public key as one OpenSSH line without a newline.
func (p Pair) AuthorizedLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p.Public)))
}

// Fingerprint is the SHA256 fingerprint as ssh-keygen -l prints it.
func (p Pair) Fingerprint() string { return ssh.FingerprintSHA256(p.Public) }

// Set is both pairs.
type Set struct {
	UID      int // LoadOwned: the owner the files were checked against
	Dir      string
	GuestDir string
	Host     Pair
	Client   Pair
}

// HostKeyBase64 is the 8th field of a Nix machines line (and publicHostKey in
// nix-darwin): base64 of the host's public key line.
func (s *Set) HostKeyBase64() string {
	return base64.StdEncoding.EncodeToString([]byte(s.Host.AuthorizedLine()))
}

// Ensure returns the keys, creating both pairs on first use and deriving a
// missing public file from its private key. Anything else that is wrong is an
// error with a fix; nothing is replaced. It also refreshes guest/.
func Ensure(l paths.Layout) (*Set, error) {
	dir := l.KeysDir()
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	hostState, clientState := pairState(dir, HostName), pairState(dir, ClientName)
	if hostState == absent && clientState == absent {
		for _, spec := range []struct{ name, comment string }{{HostName, hostComment}, {ClientName, clientComment}} {
			if err := generate(dir, spec.name, spec.comment); err != nil {
				return nil, problem.Wrap(problem.Keys, err, "cannot create SSH keys in "+dir, "check that the directory is writable")
			}
		}
	}
	s, err := load(dir, l.GuestDir(), true)
	if err != nil {
		return nil, err
	}
	if err := s.syncGuest(); err != nil {
		return nil, err
	}
	return s, nil
}

// Load returns the keys without creating or changing anything.
func Load(l paths.Layout) (*Set, error) {
	dir := l.KeysDir()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, problem.New(problem.Keys, "no SSH keys yet in "+dir, "run `wrapix-builder start`, which creates them")
	}
	return load(dir, l.GuestDir(), false)
}

// AnyOwner is LoadOwned's uid when the owner is not known: whoever owns the
// key directory.
const AnyOwner = -1

// LoadOwned is Load for root acting on behalf of the user uid (sudo's
// SUDO_UID): the key directory and every key file must belong to that user
// and be writable by nobody else, and no file is reached through a symlink.
// So root copies only what the user could read anyway, and nobody can swap
// the files between check and use.
func LoadOwned(l paths.Layout, uid int) (*Set, error) {
	dir := l.KeysDir()
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, problem.New(problem.Keys, "no SSH keys yet in "+dir, "run `wrapix-builder start` as yourself, which creates them")
	}
	if err != nil {
		return nil, problem.Wrap(problem.Keys, err, "cannot read "+dir, "")
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok {
		return nil, problem.Newf(problem.Keys, "it must be a real directory, not a link", "%s is not a directory", dir)
	}
	if uid == AnyOwner {
		uid = int(st.Uid)
	}
	if int(st.Uid) != uid || fi.Mode().Perm()&0o022 != 0 {
		return nil, problem.Newf(problem.Keys, fmt.Sprintf("it must belong to you (uid %d) and be writable only by you: chmod 700 %s", uid, shellquote.Quote(dir)),
			"%s is owned by uid %d with mode %04o", dir, st.Uid, fi.Mode().Perm())
	}
	s, err := loadAs(dir, l.GuestDir(), false, uid)
	if err != nil {
		return nil, err
	}
	s.UID = uid
	return s, nil
}

type state int

const (
	absent state = iota
	partial
	present
)

func pairState(dir, name string) state {
	_, errPriv := os.Lstat(filepath.Join(dir, name))
	_, errPub := os.Lstat(filepath.Join(dir, name+".pub"))
	switch {
	case errPriv != nil && errPub != nil:
		return absent
	case errPriv == nil && errPub == nil:
		return present
	}
	return partial
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return problem.Wrap(problem.Keys, err, "cannot create "+dir, "check the permissions of its parent directory")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return problem.Wrap(problem.Keys, err, "cannot read "+dir, "")
	}
	if fi.Mode().Perm() != 0o700 { // the directory holds private keys: only its owner may list it
		if err := os.Chmod(dir, 0o700); err != nil {
			return problem.Wrap(problem.Keys, err, "cannot make "+dir+" private (0700)", "chmod 700 "+shellquote.Quote(dir))
		}
	}
	return nil
}

func load(dir, guestDir string, deriveMissingPublic bool) (*Set, error) {
	return loadAs(dir, guestDir, deriveMissingPublic, AnyOwner)
}

// maxKeyFile caps what is read from a key file: an ed25519 key is < 1 KiB.
const maxKeyFile = 16 << 10

// readKeyFile reads a key file without following a symlink and checks the
// file it actually opened (fstat): a regular file, at most maxKeyFile bytes,
// not writable by others (private: not readable by others either), owned by
// uid unless uid is AnyOwner. A missing file is fs.ErrNotExist.
func readKeyFile(path string, private bool, uid int) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) { // EMLINK: FreeBSD's O_NOFOLLOW error
		return nil, fmt.Errorf("it is a symbolic link (replace it with the real key file)")
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("it is not a regular file")
	}
	mask := os.FileMode(0o022)
	if private {
		mask = 0o077
	}
	if perm := fi.Mode().Perm(); perm&mask != 0 {
		return nil, fmt.Errorf("it has unsafe permissions %04o", perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); uid != AnyOwner && (!ok || int(st.Uid) != uid) {
		return nil, fmt.Errorf("it is not owned by uid %d", uid)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("it is larger than %d bytes", maxKeyFile)
	}
	return data, nil
}

func loadAs(dir, guestDir string, deriveMissingPublic bool, uid int) (*Set, error) {
	host, err := loadPair(dir, HostName, hostComment, deriveMissingPublic, uid)
	if err != nil {
		return nil, err
	}
	client, err := loadPair(dir, ClientName, clientComment, deriveMissingPublic, uid)
	if err != nil {
		return nil, err
	}
	return &Set{Dir: dir, GuestDir: guestDir, Host: host, Client: client}, nil
}

func loadPair(dir, name, comment string, deriveMissingPublic bool, uid int) (Pair, error) {
	p := Pair{PrivatePath: filepath.Join(dir, name), PublicPath: filepath.Join(dir, name+".pub")}
	data, err := readKeyFile(p.PrivatePath, true, uid)
	if errors.Is(err, fs.ErrNotExist) {
		return p, problem.Newf(problem.Keys, "restore it from a backup, or create a new pair with `"+rotateFix+"` and re-run setup",
			"SSH private key %s is missing", p.PrivatePath)
	}
	if err != nil {
		return p, problem.Wrap(problem.Keys, err, "cannot use SSH private key "+p.PrivatePath,
			"chmod 600 "+shellquote.Quote(p.PrivatePath)+", own it yourself, or `"+rotateFix+"` (if others could have copied it)")
	}
	p.PrivateBytes = data
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return p, problem.Wrap(problem.Keys, err, "SSH private key "+p.PrivatePath+" is corrupt", "restore it from a backup, or `"+rotateFix+"`")
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return p, problem.Newf(problem.Keys, "`"+rotateFix+"`", "SSH private key %s is %s, not ed25519", p.PrivatePath, signer.PublicKey().Type())
	}
	p.Signer, p.Public = signer, signer.PublicKey()

	pubData, err := readKeyFile(p.PublicPath, false, uid)
	if errors.Is(err, fs.ErrNotExist) && deriveMissingPublic {
		// The public half is derived data: writing it back replaces nothing.
		line := p.AuthorizedLine() + " " + comment + "\n"
		if err := atomicfile.Write(p.PublicPath, []byte(line), 0o644); err != nil {
			return p, problem.Wrap(problem.Keys, err, "cannot write "+p.PublicPath, "")
		}
		return p, nil
	}
	if err != nil {
		return p, problem.Wrap(problem.Keys, err, "cannot read "+p.PublicPath, "")
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubData)
	if err != nil {
		return p, problem.Wrap(problem.Keys, err, "SSH public key "+p.PublicPath+" is corrupt", "delete it and it is derived again from "+p.PrivatePath)
	}
	if string(pub.Marshal()) != string(p.Public.Marshal()) {
		return p, problem.Newf(problem.Keys, "delete the .pub file (it is derived again from the private key) or restore the matching pair",
			"SSH public key %s does not match %s", p.PublicPath, p.PrivatePath)
	}
	return p, nil
}

func generate(dir, name, comment string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return err
	}
	privPath := filepath.Join(dir, name)
	if _, err := os.Lstat(privPath); err == nil {
		return fmt.Errorf("refusing to overwrite %s", privPath) // never replace a key in place
	}
	if err := atomicfile.Write(privPath, pem.EncodeToMemory(block), privateFileMod); err != nil {
		return err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))) + " " + comment + "\n"
	return atomicfile.Write(privPath+".pub", []byte(line), 0o644)
}

// syncGuest writes the subset the container may see: the host private key for
// its sshd and the client public key for authorized_keys. Never the client
// private key.
func (s *Set) syncGuest() error {
	if err := os.MkdirAll(s.GuestDir, 0o700); err != nil {
		return problem.Wrap(problem.Keys, err, "cannot create "+s.GuestDir, "")
	}
	if err := os.Chmod(s.GuestDir, 0o700); err != nil {
		return problem.Wrap(problem.Keys, err, "cannot make "+s.GuestDir+" private", "")
	}
	hostPriv, err := os.ReadFile(s.Host.PrivatePath)
	if err != nil {
		return problem.Wrap(problem.Keys, err, "cannot read "+s.Host.PrivatePath, "")
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{GuestHostKey, hostPriv, 0o600},
		{GuestHostKey + ".pub", []byte(s.Host.AuthorizedLine() + " " + hostComment + "\n"), 0o644},
		{GuestAuthKeys, []byte(s.Client.AuthorizedLine() + " " + clientComment + "\n"), 0o644},
	}
	for _, f := range files {
		if _, err := atomicfile.WriteIfChanged(filepath.Join(s.GuestDir, f.name), f.data, f.mode); err != nil {
			return problem.Wrap(problem.Keys, err, "cannot write "+filepath.Join(s.GuestDir, f.name), "")
		}
	}
	return nil
}

// Which selects pairs to rotate.
type Which struct{ Host, Client bool }

// Rotate deliberately replaces the selected pairs. The old files are moved,
// not deleted, into builder-keys/old/<timestamp>/; it returns that directory.
// Pairs that are missing entirely are simply created.
func Rotate(l paths.Layout, which Which, now time.Time) (string, error) {
	dir := l.KeysDir()
	if err := ensureDir(dir); err != nil {
		return "", err
	}
	backup := filepath.Join(dir, backupDirName, now.UTC().Format("20060102T150405Z"))
	moved := false
	for _, spec := range []struct {
		on            bool
		name, comment string
	}{{which.Host, HostName, hostComment}, {which.Client, ClientName, clientComment}} {
		if !spec.on {
			continue
		}
		for _, f := range []string{spec.name, spec.name + ".pub"} {
			src := filepath.Join(dir, f)
			if _, err := os.Lstat(src); err != nil {
				continue
			}
			if err := os.MkdirAll(backup, 0o700); err != nil {
				return "", problem.Wrap(problem.Keys, err, "cannot create backup directory "+backup, "")
			}
			if err := os.Rename(src, filepath.Join(backup, f)); err != nil {
				return "", problem.Wrap(problem.Keys, err, "cannot move "+src+" to "+backup, "")
			}
			moved = true
		}
		if err := generate(dir, spec.name, spec.comment); err != nil {
			return "", problem.Wrap(problem.Keys, err, "cannot create a new "+spec.name, "")
		}
	}
	if _, err := Ensure(l); err != nil { // validates the result and refreshes guest/
		return "", err
	}
	if !moved {
		return "", nil
	}
	return backup, nil
}
