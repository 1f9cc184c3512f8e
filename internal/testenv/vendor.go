package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// VendorFiles are the unmodified third-party snapshots carried in
// packaging/nix/testdata/vendor/ (its README, with their licences):
// nix-darwin and nixpkgs' lib, for evaluating Nix code inside the real module
// systems offline, from a plain clone.
var VendorFiles = map[string]string{
	"nix-darwin":  "nix-darwin-a1fa429e.tar.gz",
	"nixpkgs-lib": "nixpkgs-lib-de42d442.tar.gz",
}

// vendorInRepo is where the snapshots sit, relative to the repository root.
const vendorInRepo = "packaging/nix/testdata/vendor"

// VendorDir finds the snapshots in this repository: the nearest directory
// above the working directory holding go.mod (tests run in their package's
// directory). WRAPIX_VENDOR_DIR overrides.
func VendorDir() (string, error) {
	if d := os.Getenv("WRAPIX_VENDOR_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			cand := filepath.Join(d, filepath.FromSlash(vendorInRepo))
			if _, err := os.Stat(filepath.Join(cand, VendorFiles["nix-darwin"])); err != nil {
				return "", fmt.Errorf("the repository at %s lacks %s/%s (restore it with git checkout, or set WRAPIX_VENDOR_DIR)", d, vendorInRepo, VendorFiles["nix-darwin"])
			}
			return cand, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no go.mod above %s: run the tests inside the repository (or set WRAPIX_VENDOR_DIR)", wd)
		}
	}
}

// ExtractVendored unpacks both snapshots into dir/nix-darwin and
// dir/nixpkgs-lib.
func ExtractVendored(dir string) error {
	src, err := VendorDir()
	if err != nil {
		return err
	}
	for name, file := range VendorFiles {
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		if out, err := exec.Command("tar", "-xzf", filepath.Join(src, file), "-C", dst).CombinedOutput(); err != nil {
			return fmt.Errorf("extract %s: %v: %s", file, err, out)
		}
	}
	return nil
}
