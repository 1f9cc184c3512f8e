#!/usr/bin/env bash
# Assembles "Wrapix Builder.app" (make app): the menu-bar app as the bundle's
# main executable, the CLI beside it for terminal use, Info.plist stamped with
# VERSION (the one version the binaries also print), and AppIcon.icns (written
# by assets/gen: no iconutil needed, as in the Nix sandbox). On macOS it
# builds the app with cgo (systray is Objective-C), ad-hoc signs the bundle
# and can zip it or make a dmg. Elsewhere it cross-builds with CGO_ENABLED=0:
# a correct bundle for inspection (the bundle test), whose app binary can
# only say that it needs a cgo build; zip and dmg refuse it.
# IMAGE_ARCHIVE=path (`nix build .#builder-image`'s result) puts the builder
# image in Contents/Resources/builder-image.tar: a first start loads it and
# needs no repository, Nix or network (issue 17 point 4).
#   [IMAGE_ARCHIVE=image.tar] packaging/make-app.sh OUTDIR [zip|dmg]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
package=${2:-}
version=$(cat VERSION)
ldflags="-X github.com/wrapix/wrapix-builder/builder/version.Version=$version -X github.com/wrapix/wrapix-builder/builder/version.ImageFlake=github:wrapix/wrapix-builder/v$version"
app="$out/Wrapix Builder.app"

cgo=0
if [ "$(uname -s)" = Darwin ]; then cgo=1; fi
case "$package" in
"" | zip | dmg) ;;
*) echo "make-app.sh: unknown package kind \"$package\" (use zip or dmg, or nothing for the bundle alone)" >&2; exit 2 ;;
esac
if [ -n "$package" ] && [ "$cgo" = 0 ]; then
	echo "make-app.sh: a $package needs the app built with cgo on macOS (here the app binary would only say it needs cgo); run it on a Mac, or use \`make app\` to assemble the bundle for inspection" >&2
	exit 1
fi

# The image the CLI stamped below runs by default (builder/version.Image:
# one tag per release, as image/image.nix tags it): an archive without it
# would be loaded and then refused, or an older release's image run.
image_ref=wrapix-builder:$version
image_archive=${IMAGE_ARCHIVE:-}
if [ -n "$image_archive" ]; then
	if [ ! -f "$image_archive" ] || [ ! -r "$image_archive" ]; then
		echo "make-app.sh: IMAGE_ARCHIVE=$image_archive is not a readable file; build it with \`nix build .#builder-image\` and pass its result" >&2
		exit 1
	fi
	index=$(tar -xOf "$image_archive" index.json 2>/dev/null || tar -xOf "$image_archive" ./index.json 2>/dev/null || true)
	if ! printf '%s' "$index" | grep -Eq "\"org\.opencontainers\.image\.ref\.name\": *\"$image_ref\""; then
		echo "make-app.sh: IMAGE_ARCHIVE=$image_archive is not an OCI-layout tar of $image_ref (no such name in its index.json); build it with \`nix build .#builder-image\`" >&2
		exit 1
	fi
fi

rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
GOOS=darwin GOARCH=arm64 CGO_ENABLED=$cgo go build -trimpath -ldflags "$ldflags" -o "$app/Contents/MacOS/wrapix-builder-app" ./app
GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$app/Contents/MacOS/wrapix-builder" ./cmd/wrapix-builder
sed "s/@VERSION@/$version/g" Info.plist > "$app/Contents/Info.plist"
printf 'APPL????' > "$app/Contents/PkgInfo"

# The icon: assets/gen writes the .icns itself (iconutil is macOS-only and
# not in the Nix sandbox).
go run ./assets/gen -icns "$app/Contents/Resources/AppIcon.icns"
if [ -n "$image_archive" ]; then
	# Read-only: the CLI refuses an archive others could write (lifecycle.BundledImageArchive).
	cp "$image_archive" "$app/Contents/Resources/builder-image.tar"
	chmod 0444 "$app/Contents/Resources/builder-image.tar"
fi

if command -v codesign >/dev/null 2>&1; then
	codesign --force --sign - --identifier org.wrapix.builder "$app"   # ad-hoc; no --deep (one executable per slot)
	go run ./cmd/wrapix-builder check-bundle "$app" >/dev/null          # identifier and Info.plist bound (notifications)
fi

case "$package" in
zip)
	(cd "$out" && rm -f "Wrapix-Builder-$version.zip" && if command -v ditto >/dev/null; then ditto -c -k --keepParent "Wrapix Builder.app" "Wrapix-Builder-$version.zip"; else zip -qry "Wrapix-Builder-$version.zip" "Wrapix Builder.app"; fi)
	echo "$out/Wrapix-Builder-$version.zip" ;;
dmg)
	rm -f "$out/Wrapix-Builder-$version.dmg"
	hdiutil create -volname "Wrapix Builder" -srcfolder "$app" -ov -format UDZO "$out/Wrapix-Builder-$version.dmg" >/dev/null
	echo "$out/Wrapix-Builder-$version.dmg" ;;
*)
	echo "$app" ;;
esac
