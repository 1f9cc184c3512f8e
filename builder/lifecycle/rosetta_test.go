package lifecycle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wrapix/wrapix-builder/builder/config"
	"github.com/wrapix/wrapix-builder/builder/keys"
	"github.com/wrapix/wrapix-builder/builder/paths"
	"github.com/wrapix/wrapix-builder/builder/runtime"
)

// x86_64-linux needs container ≥ 0.7.0 (`run --rosetta`), Apple silicon and
// Rosetta installed; each missing piece is one error that names its fix.
// aarch64-linux alone asks for none of it.
func TestRosettaProblem(t *testing.T) {
	b := &Builder{Layout: paths.Layout{ConfigDir: "/Users/a/.config/wrapix"}, Config: config.Defaults()}
	v06, _ := runtime.ParseVersion("container CLI version 0.6.0 (build: release, commit: x)")
	if b.WantsRosetta() || b.RosettaProblem(v06) != nil {
		t.Fatal("aarch64-linux alone must not need Rosetta")
	}
	if spec := b.runSpec("v", &keys.Set{}, v06); spec.Rosetta {
		t.Fatal("Rosetta is off by default")
	}
	b.Config.Systems = []string{"aarch64-linux", "x86_64-linux"}
	err := b.RosettaProblem(v06)
	if err == nil || !strings.Contains(err.Error(), "0.7.0 or newer") || !strings.Contains(err.Error(), "container 0.6.0") {
		t.Fatalf("0.6.0: %v", err)
	}
	v07, _ := runtime.ParseVersion("container CLI version 0.7.0 (build: release, commit: x)")
	if err := b.RosettaProblem(v07); err != nil { // this (Linux) host runs x86_64 natively
		t.Fatalf("0.7.0: %v", err)
	}
	if !b.runSpec("v", &keys.Set{}, v07).Rosetta {
		t.Fatal("x86_64-linux must run the container with Rosetta")
	}

	cfg := b.Layout.ConfigFile()
	if err := rosettaOn(false, "/nonexistent", cfg); err == nil || !strings.Contains(err.Error(), "only Apple-silicon Macs") || !strings.Contains(err.Error(), cfg) {
		t.Fatalf("Intel Mac: %v", err)
	}
	missing := filepath.Join(t.TempDir(), "libRosettaRuntime")
	if err := rosettaOn(true, missing, cfg); err == nil || !strings.Contains(err.Error(), "not installed") || !strings.Contains(err.Error(), InstallRosetta) {
		t.Fatalf("no Rosetta: %v", err)
	}
	os.WriteFile(missing, nil, 0o644)
	if err := rosettaOn(true, missing, cfg); err != nil {
		t.Fatalf("Rosetta installed: %v", err)
	}
}
