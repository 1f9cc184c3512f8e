package codesig

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goBuilt builds a darwin/arm64 executable with Go's internal linker,
// which signs it ad hoc as a linker does (cmd/internal/codesign): the
// identifier is the file's name (go build links to "a.out" and copies it),
// and no Info.plist is bound — the
// signature every Mach-O of the Nix-built bundle had (issue 17 point 5).
func goBuilt(t *testing.T, dir, name string) string {
	t.Helper()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	return out
}

func TestReadsALinkerSignature(t *testing.T) {
	exe := goBuilt(t, t.TempDir(), "wrapix-builder-app")
	sig, err := Read(exe)
	if err != nil {
		t.Fatal(err)
	}
	cd := sig.Directories[0]
	if cd.Identifier != "a.out" || cd.Flags&FlagAdhoc == 0 || cd.HashType != 2 || cd.PageSize != 4096 {
		t.Errorf("directory: identifier %q flags %#x hash type %d page %d", cd.Identifier, cd.Flags, cd.HashType, cd.PageSize)
	}
	if cd.Special(SlotInfoPlist) != nil || sig.InfoPlistBound([]byte("<plist/>")) {
		t.Error("a linker's signature binds an Info.plist")
	}
	// The page hashes were checked against the file: a changed byte fails.
	data, _ := os.ReadFile(exe)
	data[len(data)/3] ^= 0xff
	os.WriteFile(exe, data, 0o755)
	if _, err := Read(exe); err == nil || !strings.Contains(err.Error(), "changed after signing") {
		t.Errorf("a changed file: %v", err)
	}
}

// A bundle whose main executable carries a per-file signature — the
// Nix-built app before the fix — is reported, with what is wrong.
func TestCheckBundleRefusesAFileSignature(t *testing.T) {
	app := filepath.Join(t.TempDir(), "Wrapix Builder.app")
	macos := filepath.Join(app, "Contents", "MacOS")
	os.MkdirAll(macos, 0o755)
	goBuilt(t, macos, "wrapix-builder-app")
	info, _ := os.ReadFile("../../Info.plist")
	os.WriteFile(filepath.Join(app, "Contents", "Info.plist"), info, 0o644)
	err := CheckBundle(app)
	if err == nil || !strings.Contains(err.Error(), `signed as "a.out", not as the bundle "org.wrapix.builder"`) {
		t.Fatalf("CheckBundle: %v", err)
	}

	// The Info.plist slot: bound only with the hash of these very bytes.
	sig, err := Read(filepath.Join(macos, "wrapix-builder-app"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(info)
	sig.Directories[0].special = [][]byte{h[:], make([]byte, 32)}
	if !sig.InfoPlistBound(info) || sig.InfoPlistBound(bytes.Replace(info, []byte("15.0"), []byte("14.0"), 1)) {
		t.Error("InfoPlistBound does not compare the Info.plist slot with the file's hash")
	}
	sig.Directories[0].special = [][]byte{make([]byte, 32)}
	if sig.InfoPlistBound(info) {
		t.Error("an empty Info.plist slot counts as bound")
	}
}
