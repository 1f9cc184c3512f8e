package lifecycle

import (
	"os"
	"path/filepath"
	"syscall"
)

// BundledImageName is the image archive an app bundle carries in
// Contents/Resources (packaging/make-app.sh IMAGE_ARCHIVE=…, the flake's
// app): the OCI-layout tar of the image this version runs, so a first start
// needs no repository, no Nix and no network (issue 17 point 4).
const BundledImageName = "builder-image.tar"

// BundledImageArchive returns the image archive of the app bundle the
// program exe belongs to (…/Contents/MacOS/x → …/Contents/Resources/
// builder-image.tar, symlinks resolved), or "" when exe is not in a bundle
// or the bundle has no usable archive. Only a regular file owned by root or
// by us and writable by nobody else counts: anyone who could write it could
// choose what the builder runs.
func BundledImageArchive(exe string) string {
	exe, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return ""
	}
	macos := filepath.Dir(exe)
	contents := filepath.Dir(macos)
	if filepath.Base(macos) != "MacOS" || filepath.Base(contents) != "Contents" {
		return ""
	}
	archive := filepath.Join(contents, "Resources", BundledImageName)
	real, err := filepath.EvalSymlinks(archive)
	if err != nil {
		return ""
	}
	fi, err := os.Stat(real)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || (st.Uid != 0 && int(st.Uid) != os.Getuid()) {
		return ""
	}
	return real
}

// bundledImage is BundledImageArchive of the running program.
func bundledImage() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return BundledImageArchive(exe)
}

// fromBundle is ImageArchive's "from" for the bundle's archive.
const fromBundle = "the app bundle"

// ImageArchive is where a start gets the image when it is not loaded:
// config.toml's image-archive, else the app bundle's archive, else "" (a
// start builds it from image-flake). from says which, for the user.
func (b *Builder) ImageArchive() (archive, from string) {
	if b.Config.ImageArchive != "" {
		return b.Config.ImageArchive, "image-archive in " + b.Layout.ConfigFile()
	}
	if b.BundledImage != "" {
		return b.BundledImage, fromBundle
	}
	return "", ""
}
