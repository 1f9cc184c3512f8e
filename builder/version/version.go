// Package version holds the one version string of Wrapix Builder. The
// Makefile stamps it from the VERSION file with -ldflags; Info.plist takes
// the same file, so the app and the CLI always agree.
package version

// Version is overwritten at link time: -X github.com/wrapix/wrapix-builder/builder/version.Version=…
var Version = "0.1.0-dev"
