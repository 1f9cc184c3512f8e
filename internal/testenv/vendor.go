package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// VendorFiles are the unmodified third-party snapshots in shared/vendor/
// (its README): nix-darwin and nixpkgs' lib, for evaluating Nix code inside
// the real module systems offline.
var VendorFiles = map[string]string{
	"nix-darwin":  "nix-darwin-a1fa429e.tar.gz",
	"nixpkgs-lib": "nixpkgs-lib-de42d442.tar.gz",
}

// VendorDir finds shared/vendor beside the project or above it (worktrees
// sit deeper); WRAPIX_VENDOR_DIR overrides.
func VendorDir() (string, error) {
	if d := os.Getenv("WRAPIX_VENDOR_DIR"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "vendor")
		if _, err := os.Stat(filepath.Join(cand, VendorFiles["nix-darwin"])); err == nil {
			return cand, nil
		}
		if d == filepath.Dir(d) {
			return "", fmt.Errorf("no shared/vendor/%s above %s (set WRAPIX_VENDOR_DIR)", VendorFiles["nix-darwin"], wd)
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
