package packaging

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	wversion "github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// flakeApp evaluates flake.nix's outputs with the real nixpkgs lib and the
// stand-in pkgs (nix/testdata/pkgs.nix; nixpkgs itself is too large to
// ship), libffi's dev output pointing at libffiDev, and returns what the
// tests check of the macOS app bundle and the CLI.
type flakeApp struct {
	Pname, GoVersion, CLIGoVersion, VendorHash, PostInstall, PostFixup string
	BuildInputs                                                        []struct{ Name, Cmd string }
	NativeBuildInputs                                                  []string
}

func evalFlake(t *testing.T, libffiDev string) flakeApp {
	t.Helper()
	out, err := flakeEval(t, libffiDev, "pkgs", `{
  inherit (app) pname vendorHash postInstall;
  postFixup = app.postFixup or "";
  nativeBuildInputs = map (d: d.name) (app.nativeBuildInputs or [ ]);
  goVersion = app.go.version;
  cliGoVersion = out.packages.aarch64-linux.wrapix-builder.go.version;
  buildInputs = map (d: { name = d.name; cmd = d.buildCommand or ""; }) app.buildInputs;
}`)
	if err != nil {
		t.Fatalf("evaluate flake.nix: %v\n%s", err, out)
	}
	var app flakeApp
	if err := json.Unmarshal([]byte(out), &app); err != nil {
		t.Fatal(err)
	}
	return app
}

// flakeEval evaluates expr with `out` (the flake's outputs) and `app` bound;
// pkgsExpr may change each system's stand-in `pkgs`.
func flakeEval(t *testing.T, libffiDev, pkgsExpr, expr string) (string, error) {
	t.Helper()
	vend := t.TempDir()
	if err := testenv.ExtractVendored(vend); err != nil {
		t.Fatal(err)
	}
	full := fmt.Sprintf(`let
  lib = import %s/nixpkgs-lib/lib;
  nixpkgs = { inherit lib; legacyPackages = lib.genAttrs [ "aarch64-darwin" "x86_64-darwin" "aarch64-linux" "x86_64-linux" ]
    (system: let pkgs = import ./nix/testdata/pkgs.nix { inherit lib system; libffiDev = %q; }; in %s); };
  out = (import ../flake.nix).outputs { self = out; inherit nixpkgs; };
  app = out.packages.aarch64-darwin.default;
in %s`, vend, libffiDev, pkgsExpr, expr)
	cmd := exec.Command("nix-instantiate", "--option", "build-users-group", "", "--eval", "--strict", "--json", "-E", full)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.String(), err
	}
	return string(out), nil
}

// 12: with a nixpkgs that has no Go 1.26 the flake says which nixpkgs it
// needs instead of failing inside the build (GOTOOLCHAIN=local).
func TestFlakeNamesTheNixpkgsItNeeds(t *testing.T) {
	out, err := flakeEval(t, t.TempDir(), `removeAttrs pkgs [ "buildGo126Module" ]`, "app.pname")
	if err == nil || !strings.Contains(out, "wrapix-builder needs Go 1.26 (go.mod): use a nixpkgs with buildGo126Module") {
		t.Errorf("want the flake's message naming the nixpkgs it needs, got %v\n%s", err, out)
	}
}

// goModVersion is go.mod's `go` directive.
func goModVersion(t *testing.T) string {
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// 12: buildGoModule sets GOTOOLCHAIN=local, so the Go the flake builds with
// must be at least what go.mod says; nixpkgs' default Go may lag behind.
func TestFlakeUsesTheGoOfGoMod(t *testing.T) {
	app := evalFlake(t, t.TempDir())
	want := goModVersion(t)
	for what, v := range map[string]string{"app": app.GoVersion, "CLI": app.CLIGoVersion} {
		if versionLess(v, want) {
			t.Errorf("the flake builds the %s with Go %s, go.mod needs %s (GOTOOLCHAIN=local: no download)", what, v, want)
		}
	}
}

// versionLess compares dotted release versions ("1.25.7" < "1.26.0").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// 12: vendorHash is the NAR hash of `go mod vendor`'s output, as
// buildGoModule's goModules fixed-output derivation makes it (the vendor
// directory including modules.txt; pkgs/build-support/go/module.nix),
// recomputed from go.mod/go.sum through the module proxy and hashed by Nix.
func TestFlakeVendorHash(t *testing.T) {
	app := evalFlake(t, t.TempDir())
	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command("go", "mod", "vendor", "-o", vendor)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOTOOLCHAIN=local", "GO111MODULE=on", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(vendor, "modules.txt")); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nix", "--extra-experimental-features", "nix-command", "hash", "path", "--type", "sha256", vendor).Output()
	if err != nil {
		t.Fatalf("nix hash path: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != app.VendorHash {
		t.Errorf("flake.nix vendorHash = %s, but go.sum's dependencies hash to %s: update vendorHash", app.VendorHash, got)
	}
}

// 9: darwinkit's objc/ffi does `#import <ffi/ffi.h>`; nixpkgs' SDK has no
// ffi headers and libffi installs include/ffi.h. The flake's app build gets
// a shim with include/ffi/ffi.h. Its build command runs here against a
// libffi dev output laid out as nixpkgs' (Debian's libffi-dev headers),
// and a C file using <ffi/ffi.h> compiles, links and calls through libffi
// with only those two include directories — and not without the shim.
func TestFlakeAppFindsFFIHeaders(t *testing.T) {
	testenv.Require(t, "cc")
	headers, _ := filepath.Glob("/usr/include/*/ffi.h")
	if len(headers) == 0 {
		t.Fatal("libffi-dev is required (apt-get install libffi-dev; make deps)")
	}
	libffiDev := filepath.Join(t.TempDir(), "libffi-dev")
	os.MkdirAll(filepath.Join(libffiDev, "include"), 0o755)
	for _, h := range []string{"ffi.h", "ffitarget.h"} {
		os.Symlink(filepath.Join(filepath.Dir(headers[0]), h), filepath.Join(libffiDev, "include", h))
	}
	app := evalFlake(t, libffiDev)
	var shimCmd string
	for _, in := range app.BuildInputs {
		if strings.Contains(in.Cmd, "include/ffi") {
			shimCmd = in.Cmd
		}
	}
	if shimCmd == "" {
		t.Fatalf("the app's buildInputs %v provide no include/ffi/ffi.h", app.BuildInputs)
	}
	shim := filepath.Join(t.TempDir(), "shim")
	build := exec.Command("bash", "-euo", "pipefail", "-c", shimCmd)
	build.Env = append(os.Environ(), "out="+shim)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the shim's build command: %v\n%s", err, out)
	}

	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	os.WriteFile(src, []byte(`#include <ffi/ffi.h>
#include <stdlib.h>
int main(void) {
	ffi_cif cif;
	ffi_type *args[1] = { &ffi_type_sint };
	int x = -5; void *values[1] = { &x };
	ffi_arg rc;
	if (ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 1, &ffi_type_sint, args) != FFI_OK) return 2;
	ffi_call(&cif, FFI_FN(abs), &rc, values);
	return (int)rc == 5 ? 0 : 1;
}
`), 0o644)
	// -nostdinc + the system's own C headers only: the ffi headers come from
	// the shim and the libffi dev tree, as cc-wrapper's -isystem gives them.
	sysInc, err := exec.Command("cc", "-print-file-name=include").Output()
	if err != nil {
		t.Fatal(err)
	}
	compile := func(includes ...string) ([]byte, error) {
		args := []string{"-nostdinc", "-isystem", strings.TrimSpace(string(sysInc)), "-isystem", "/usr/include"}
		for _, inc := range includes {
			args = append(args, "-isystem", inc)
		}
		// Debian's multiarch directory holds its own ffi.h: keep it out,
		// except for the C library's headers it also has.
		args = append(args, "-idirafter", filepath.Dir(headers[0]), "-o", filepath.Join(dir, "probe"), src, "-lffi")
		return exec.Command("cc", args...).CombinedOutput()
	}
	if out, err := compile(filepath.Join(libffiDev, "include")); err == nil {
		t.Fatalf("<ffi/ffi.h> found without the shim: the check proves nothing\n%s", out)
	}
	if out, err := compile(filepath.Join(shim, "include"), filepath.Join(libffiDev, "include")); err != nil {
		t.Fatalf("compile with the shim: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(dir, "probe")).CombinedOutput(); err != nil {
		t.Fatalf("the probe's call through libffi failed: %v\n%s", err, out)
	}
}

// 10: the Nix build writes AppIcon.icns itself (no iconutil in the sandbox).
func TestFlakeAppIcon(t *testing.T) {
	app := evalFlake(t, t.TempDir())
	if !strings.Contains(app.PostInstall, `gen -icns "$app/Resources/AppIcon.icns"`) || strings.Contains(app.PostInstall, "iconutil -c") {
		t.Errorf("the app bundle's icon:\n%s", app.PostInstall)
	}
}

// `nix flake check`'s module-matches-cli: lib.nix gives the Go code's golden
// files (its build command only touches $out when they are equal).
func TestFlakeCheckModuleMatchesCLI(t *testing.T) {
	out, err := flakeEval(t, t.TempDir(), "pkgs", `out.checks.aarch64-darwin.module-matches-cli.buildCommand`)
	if err != nil || out != `"touch $out"` {
		t.Errorf("the flake's module-matches-cli check fails: %v\n%s", err, out)
	}
}

// The Nix-built app is signed as a bundle (issue 17 point 5): after
// nixpkgs' per-file signing in fixup, rcodesign signs the bundle, and the
// bundled CLI's check-bundle (builder/codesig, tested on Go-linked Mach-O
// files) fails the build unless the main executable is signed as
// org.wrapix.builder with Info.plist bound.
func TestFlakeSignsTheAppBundle(t *testing.T) {
	app := evalFlake(t, t.TempDir())
	sign := strings.Index(app.PostFixup, `rcodesign sign "$out/Applications/Wrapix Builder.app"`)
	check := strings.Index(app.PostFixup, `check-bundle "$out/Applications/Wrapix Builder.app"`)
	if sign < 0 || check < sign {
		t.Errorf("postFixup does not sign the bundle, then check it:\n%s", app.PostFixup)
	}
	if !slices.ContainsFunc(app.NativeBuildInputs, func(n string) bool { return strings.HasPrefix(n, "rcodesign-") }) {
		t.Errorf("nativeBuildInputs %v lack rcodesign", app.NativeBuildInputs)
	}
	if strings.Contains(app.PostInstall, "codesign") {
		t.Error("the bundle is signed in postInstall: fixup's stripping and per-file signing would undo it")
	}
}

// 17.4: flake.lock pins nixpkgs, so two users of one release build the same
// image. The lock must be for flake.nix's input as written (else Nix
// re-locks it, needing the network, and picks whatever is newest), its rev
// a commit and its narHash a SHA-256; and real Nix must read it offline
// without rewriting it.
func TestFlakeLockPinsNixpkgs(t *testing.T) {
	flake, err := os.ReadFile("../flake.nix")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*inputs\.nixpkgs\.url = "github:([^/"]+)/([^/"]+)/([^/"]+)";`).FindSubmatch(flake)
	if m == nil {
		t.Fatal(`flake.nix has no inputs.nixpkgs.url = "github:OWNER/REPO/REF"`)
	}
	owner, repo, ref := string(m[1]), string(m[2]), string(m[3])

	raw, err := os.ReadFile("../flake.lock")
	if err != nil {
		t.Fatalf("no flake.lock: nixpkgs is whatever is newest on the day of the build (%v)", err)
	}
	type ghRef struct {
		Type, Owner, Repo, Ref, Rev, NarHash string
		LastModified                         int64
	}
	var lock struct {
		Version int
		Root    string
		Nodes   map[string]struct {
			Inputs           map[string]json.RawMessage
			Locked, Original *ghRef
		}
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		t.Fatalf("flake.lock: %v", err)
	}
	if lock.Version != 7 {
		t.Errorf("flake.lock version %d, want 7", lock.Version)
	}
	var name string
	if err := json.Unmarshal(lock.Nodes[lock.Root].Inputs["nixpkgs"], &name); err != nil {
		t.Fatalf("flake.lock: root node %q has no nixpkgs input: %v", lock.Root, err)
	}
	node := lock.Nodes[name]
	if node.Locked == nil || node.Original == nil {
		t.Fatalf("flake.lock: node %q lacks locked or original", name)
	}
	if o := *node.Original; o != (ghRef{Type: "github", Owner: owner, Repo: repo, Ref: ref}) {
		t.Errorf("flake.lock's nixpkgs original %+v is not flake.nix's github:%s/%s/%s", o, owner, repo, ref)
	}
	l := *node.Locked
	if l.Type != "github" || l.Owner != owner || l.Repo != repo || l.Ref != "" {
		t.Errorf("flake.lock's nixpkgs locked %+v is not a commit of github:%s/%s", l, owner, repo)
	}
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(l.Rev) {
		t.Errorf("locked rev %q is not a 40-hex commit", l.Rev)
	}
	if sum, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(l.NarHash, "sha256-")); err != nil || !strings.HasPrefix(l.NarHash, "sha256-") || len(sum) != 32 {
		t.Errorf("locked narHash %q is not sha256-<base64 of 32 bytes>", l.NarHash)
	}
	// Go 1.26.0 was released on 2026-02-10; nixpkgs got buildGo126Module with 1.26.x after it.
	if l.LastModified < time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC).Unix() {
		t.Errorf("locked nixpkgs is from %s, before Go 1.26.0 (go.mod needs %s)", time.Unix(l.LastModified, 0).UTC(), goModVersion(t))
	}

	// Real Nix, offline, told not to change the lock: a lock it does not
	// accept as is makes it resolve github:…/REF, which needs the network.
	dir := t.TempDir()
	for _, f := range []string{"flake.nix", "flake.lock", "VERSION"} {
		data, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("nix", "--extra-experimental-features", "nix-command flakes", "--option", "build-users-group", "",
		"flake", "metadata", "--offline", "--no-update-lock-file", "--json", "path:"+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix flake metadata --offline does not accept flake.lock: %v\n%s", err, stderr.String())
	}
	var meta struct {
		Locks struct {
			Nodes map[string]struct{ Locked ghRef }
		}
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		t.Fatal(err)
	}
	if got := meta.Locks.Nodes[name].Locked; got != l {
		t.Errorf("nix reads the nixpkgs lock as %+v, flake.lock says %+v", got, l)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "flake.lock")); string(after) != string(raw) {
		t.Errorf("nix rewrote flake.lock:\n%s", after)
	}
}

// 17.4: the Nix-built app carries the image its version runs, read-only,
// where the bundled CLI looks for it (lifecycle.BundledImageName).
func TestFlakeAppBundlesTheImage(t *testing.T) {
	out, err := flakeEval(t, t.TempDir(), "pkgs", `{ inherit (app) postInstall; image = out.packages.aarch64-darwin.builder-image.outPath; }`)
	if err != nil {
		t.Fatalf("evaluate flake.nix: %v\n%s", err, out)
	}
	var got struct{ PostInstall, Image string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := `install -m 0444 ` + got.Image + ` "$app/Resources/` + lifecycle.BundledImageName + `"`
	if got.Image == "" || !strings.Contains(got.PostInstall, want) {
		t.Errorf("the app does not bundle builder-image (%s):\n%s", want, got.PostInstall)
	}
}

// Issue 15: the flake's builder-image is tagged as the CLI and the app it
// builds, stamped with the same version, run it by default.
func TestFlakeImageIsTheOneItsCLIRuns(t *testing.T) {
	out, err := flakeEval(t, t.TempDir(), "pkgs", `{
  ref = out.packages.aarch64-darwin.builder-image.passthru.imageRef;
  appLdflags = app.ldflags;
  cliLdflags = out.packages.aarch64-darwin.wrapix-builder.ldflags;
}`)
	if err != nil {
		t.Fatalf("evaluate flake.nix: %v\n%s", err, out)
	}
	var got struct {
		Ref                    string
		AppLdflags, CLILdflags []string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	for what, ldflags := range map[string][]string{"app": got.AppLdflags, "CLI": got.CLILdflags} {
		stamped := ""
		for _, f := range ldflags {
			if v, ok := strings.CutPrefix(f, "-X github.com/wrapix/wrapix-builder/builder/version.Version="); ok {
				stamped = v
			}
		}
		if stamped == "" {
			t.Errorf("the flake's %s is not stamped with a version: %q", what, ldflags)
		}
		if want := wversion.ImageFor(stamped); got.Ref != want {
			t.Errorf("the flake's builder-image is %q, its %s (version %s) runs %q", got.Ref, what, stamped, want)
		}
	}
}
