// Package version holds the one version string of Wrapix Builder. The
// Makefile stamps it from the VERSION file with -ldflags; Info.plist takes
// the same file, so the app and the CLI always agree.
package version

// Version is overwritten at link time: -X github.com/wrapix/wrapix-builder/builder/version.Version=…
// A build without the flag (go build, go test) reports this development version.
var Version = "0.1.0-dev"

// ImageFlake is the flake reference whose `builder-image` output matches this
// binary: a first start without a loaded image builds it with the user's Nix.
// Stamped at link time like Version (-X …/version.ImageFlake=github:wrapix/wrapix-builder/v<VERSION>);
// config.toml's image-flake overrides it.
var ImageFlake = "github:wrapix/wrapix-builder"

// ImageRepository is the repository name of every release's builder image.
const ImageRepository = "wrapix-builder"

// Image is the builder image this build runs by default: tagged with its
// version, so that an upgrade loads and runs its own image (new entrypoint,
// store migrations) instead of the one an older release left loaded.
// image/image.nix tags the image it builds the same way.
func Image() string { return ImageFor(Version) }

// ImageFor is the image reference of the release v.
func ImageFor(v string) string { return ImageRepository + ":" + v }
