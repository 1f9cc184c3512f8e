// Package version holds the one version string of Wrapix Builder. The
// Makefile stamps it from the VERSION file with -ldflags; Info.plist takes
// the same file, so the app and the CLI always agree.
package version

// Version is overwritten at link time: -X github.com/wrapix/wrapix-builder/builder/version.Version=…
var Version = "0.1.0-dev"

// ImageFlake is the flake reference whose `builder-image` output matches this
// binary: a first start without a loaded image builds it with the user's Nix.
// Stamped at link time like Version (-X …/version.ImageFlake=github:wrapix/wrapix-builder/v<VERSION>);
// config.toml's image-flake overrides it.
var ImageFlake = "github:wrapix/wrapix-builder"
