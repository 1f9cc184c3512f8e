// Package packaging holds the scripts and templates that ship Wrapix
// Builder; its tests check what `make app` produces.
package packaging

import (
	"archive/tar"
	"bytes"
	"debug/macho"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/codesig"
	"github.com/wrapix/wrapix-builder/builder/lifecycle"
	wversion "github.com/wrapix/wrapix-builder/builder/version"
	"github.com/wrapix/wrapix-builder/internal/testenv"
)

// plistDict reads the top-level <dict> of an XML property list.
func plistDict(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := xml.NewDecoder(f)
	dec.Strict = true
	out := map[string]string{}
	var key string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			depth++
			switch el.Name.Local {
			case "key", "string":
				var s string
				if err := dec.DecodeElement(&s, &el); err != nil {
					t.Fatal(err)
				}
				depth--
				if el.Name.Local == "key" {
					key = s
				} else if depth == 2 {
					out[key] = s
				}
			case "true", "false":
				if depth == 3 {
					out[key] = el.Name.Local
				}
			}
		case xml.EndElement:
			depth--
		}
	}
	return out
}

func TestMakeAppBundle(t *testing.T) {
	out := t.TempDir()
	version, _ := os.ReadFile("../VERSION")
	v := strings.TrimSpace(string(version))
	image := testenv.OCIArchive(t, wversion.ImageFor(v))
	cmd := exec.Command("./make-app.sh", out)
	cmd.Env = append(os.Environ(), "IMAGE_ARCHIVE="+image)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make-app.sh: %v\n%s", err, msg)
	}
	app := filepath.Join(out, "Wrapix Builder.app", "Contents")

	p := plistDict(t, filepath.Join(app, "Info.plist"))
	want := map[string]string{
		"CFBundleIdentifier": "org.wrapix.builder", "CFBundleExecutable": "wrapix-builder-app", "CFBundlePackageType": "APPL",
		"CFBundleShortVersionString": v, "CFBundleVersion": v, "LSUIElement": "true", "LSMinimumSystemVersion": "15.0", "CFBundleIconFile": "AppIcon",
	}
	for k, w := range want {
		if p[k] != w {
			t.Errorf("Info.plist %s = %q, want %q", k, p[k], w)
		}
	}
	if !strings.Contains(p["NSLocalNetworkUsageDescription"], "192.168.64") {
		t.Error("NSLocalNetworkUsageDescription missing")
	}
	for _, bin := range []string{"wrapix-builder", "wrapix-builder-app"} {
		path := filepath.Join(app, "MacOS", bin)
		f, err := macho.Open(path)
		if err != nil {
			t.Fatalf("%s is not a Mach-O: %v", bin, err)
		}
		if f.Cpu != macho.CpuArm64 || f.Type != macho.TypeExec {
			t.Errorf("%s: cpu %v type %v", bin, f.Cpu, f.Type)
		}
		// One version: the binary's (stamped from VERSION) equals the plist's.
		got := stampedVersion(t, f)
		if got != v {
			t.Errorf("%s reports version %q, Info.plist %q", bin, got, v)
		}
		// Issue 15: the bundled image is the one this CLI runs by default.
		if want, ref := wversion.ImageFor(got), archiveRef(t, filepath.Join(app, "Resources", lifecycle.BundledImageName)); bin == "wrapix-builder" && ref != want {
			t.Errorf("the bundled image is %q, the bundled CLI (version %s) runs %q", ref, got, want)
		}
		f.Close()
	}
	// The signature (builder/codesig reads it and checks every page): on a
	// Mac, codesign binds Info.plist and the bundle identifier (notifications
	// need both, issue 17 point 5); here the binaries carry only Go's
	// per-file signature, which check-bundle tells apart.
	for _, bin := range []string{"wrapix-builder", "wrapix-builder-app"} {
		if _, err := codesig.Read(filepath.Join(app, "MacOS", bin)); err != nil {
			t.Errorf("%s: %v", bin, err)
		}
	}
	err := codesig.CheckBundle(filepath.Dir(app))
	if runtime.GOOS == "darwin" && err != nil {
		t.Errorf("make app on a Mac: %v", err)
	}
	if runtime.GOOS != "darwin" && (err == nil || !strings.Contains(err.Error(), "not signed as a bundle")) {
		t.Errorf("the bundle assembled without codesign passes check-bundle: %v", err)
	}
	// Info.plist names AppIcon: the bundle has AppIcon.icns (no iconutil
	// needed), with the 512 pt @2x entry macOS shows in Finder.
	icon, err := os.ReadFile(filepath.Join(app, "Resources", "AppIcon.icns"))
	if err != nil {
		t.Fatalf("no AppIcon.icns in Resources: %v", err)
	}
	if len(icon) < 8 || string(icon[:4]) != "icns" || int(binary.BigEndian.Uint32(icon[4:8])) != len(icon) || !bytes.Contains(icon, []byte("ic10\x00")) {
		t.Errorf("AppIcon.icns is not an icns file with an ic10 entry")
	}
	// IMAGE_ARCHIVE: the bundle carries the image (issue 17 point 4),
	// read-only, where the bundled CLI looks for it.
	bundled := filepath.Join(app, "Resources", lifecycle.BundledImageName)
	wantImage, _ := os.ReadFile(image)
	if got, err := os.ReadFile(bundled); err != nil || !bytes.Equal(got, wantImage) {
		t.Errorf("the bundle does not carry IMAGE_ARCHIVE: %v", err)
	}
	if got := lifecycle.BundledImageArchive(filepath.Join(app, "MacOS", "wrapix-builder")); got != bundled {
		t.Errorf("the bundled CLI finds %q, want %s", got, bundled)
	}
}

// IMAGE_ARCHIVE that is missing, or not an image of the reference the CLI
// runs, is refused with one line before anything is built.
func TestMakeAppRefusesABadImageArchive(t *testing.T) {
	for what, archive := range map[string]string{
		"missing":     filepath.Join(t.TempDir(), "nonexistent.tar"),
		"other image": testenv.OCIArchive(t, "other:latest"),
		// Issue 15: an older release's image (every release was :latest
		// before 0.2) would make the new CLI run the old entrypoint.
		"older release": testenv.OCIArchive(t, "wrapix-builder:latest"),
		"not a tar":     writeFile(t, "not a tar"),
	} {
		out := t.TempDir()
		cmd := exec.Command("./make-app.sh", out)
		cmd.Env = append(os.Environ(), "IMAGE_ARCHIVE="+archive)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Errorf("%s: make-app.sh accepted IMAGE_ARCHIVE=%s", what, archive)
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "IMAGE_ARCHIVE="+archive) || !strings.Contains(lines[0], "nix build .#builder-image") {
			t.Errorf("%s: want one error line naming the archive and the fix, got %q", what, stderr.String())
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("%s: left %v behind", what, entries)
		}
	}
}

// archiveRef is the image name in an OCI-layout tar's index.json, as
// `container image load` reads it.
func archiveRef(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s has no index.json: %v", archive, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil || len(idx.Manifests) != 1 {
			t.Fatalf("%s: index.json with one manifest: %v", archive, err)
		}
		return idx.Manifests[0].Annotations["org.opencontainers.image.ref.name"]
	}
}

func writeFile(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "file.tar")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// On Linux the app cannot be built with cgo: a zip or dmg would ship an app
// that only says it needs cgo. Both refuse with one line and leave nothing.
func TestMakeAppRefusesPackagesWithoutCgo(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("macOS builds the app with cgo")
	}
	for _, kind := range []string{"zip", "dmg"} {
		out := t.TempDir()
		cmd := exec.Command("./make-app.sh", out, kind)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("make-app.sh %s succeeded without cgo", kind)
		}
		if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "needs the app built with cgo on macOS") {
			t.Errorf("%s: want one clear error line, got %q", kind, stderr.String())
		}
		if entries, _ := os.ReadDir(out); len(entries) != 0 {
			t.Errorf("%s: left %v behind", kind, entries)
		}
	}
}

func TestTemplatesAreWellFormed(t *testing.T) {
	p := plistDict(t, "launchagent.plist.in")
	if p["Label"] != "org.wrapix.builder" {
		t.Errorf("launch agent label %q", p["Label"])
	}
	cask, _ := os.ReadFile("wrapix-builder.rb.in")
	for _, want := range []string{`app "Wrapix Builder.app"`, "Contents/MacOS/wrapix-builder", "@VERSION@", "@SHA256@"} {
		if !strings.Contains(string(cask), want) {
			t.Errorf("cask lacks %s", want)
		}
	}
}

// stampedVersion reads the string variable builder/version.Version out of a
// Mach-O: the symbol's string header (pointer, length), then the bytes.
func stampedVersion(t *testing.T, f *macho.File) string {
	t.Helper()
	read := func(addr, n uint64) []byte {
		for _, sec := range f.Sections {
			if addr >= sec.Addr && addr+n <= sec.Addr+sec.Size {
				data, err := sec.Data()
				if err != nil {
					t.Fatal(err)
				}
				return data[addr-sec.Addr : addr-sec.Addr+n]
			}
		}
		t.Fatalf("address %#x not in any section", addr)
		return nil
	}
	for _, sym := range f.Symtab.Syms {
		if sym.Name == "github.com/wrapix/wrapix-builder/builder/version.Version" {
			hdr := read(sym.Value, 16)
			return string(read(binary.LittleEndian.Uint64(hdr[:8]), binary.LittleEndian.Uint64(hdr[8:])))
		}
	}
	t.Fatal("no version symbol")
	return ""
}
