#!/usr/bin/env bash
# Assembles "Wrapix Builder.app" (make app): the menu-bar app as the bundle's
# main executable, the CLI beside it for terminal use, Info.plist stamped with
# VERSION (the one version the binaries also print), and the icon. On macOS
# it builds the app with cgo (systray is Objective-C), ad-hoc signs the
# bundle and can zip it or make a dmg; elsewhere it cross-builds with
# CGO_ENABLED=0, which makes a correct bundle whose app binary can only say
# that it needs a cgo build (the CLI inside is fully functional).
#   packaging/make-app.sh OUTDIR [zip|dmg]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
package=${2:-}
version=$(cat VERSION)
ldflags="-X github.com/wrapix/wrapix-builder/builder/version.Version=$version"
app="$out/Wrapix Builder.app"

rm -rf "$app"
mkdir -p "$app/Contents/MacOS" "$app/Contents/Resources"
cgo=0
if [ "$(uname -s)" = Darwin ]; then cgo=1; fi
GOOS=darwin GOARCH=arm64 CGO_ENABLED=$cgo go build -trimpath -ldflags "$ldflags" -o "$app/Contents/MacOS/wrapix-builder-app" ./app
GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$app/Contents/MacOS/wrapix-builder" ./cmd/wrapix-builder
sed "s/@VERSION@/$version/g" Info.plist > "$app/Contents/Info.plist"
printf 'APPL????' > "$app/Contents/PkgInfo"

# The icon: an .icns made with iconutil on macOS; the PNG set elsewhere.
go run ./assets/gen -appicon "$out/AppIcon.iconset"
if command -v iconutil >/dev/null 2>&1; then
	iconutil -c icns "$out/AppIcon.iconset" -o "$app/Contents/Resources/AppIcon.icns"
else
	cp "$out/AppIcon.iconset/icon_512x512.png" "$app/Contents/Resources/AppIcon.png"
fi
rm -rf "$out/AppIcon.iconset"

if command -v codesign >/dev/null 2>&1; then
	codesign --force --sign - --identifier org.wrapix.builder "$app"   # ad-hoc; no --deep (one executable per slot)
fi

case "$package" in
zip)
	(cd "$out" && rm -f "Wrapix-Builder-$version.zip" && if command -v ditto >/dev/null; then ditto -c -k --keepParent "Wrapix Builder.app" "Wrapix-Builder-$version.zip"; else zip -qry "Wrapix-Builder-$version.zip" "Wrapix Builder.app"; fi)
	echo "$out/Wrapix-Builder-$version.zip" ;;
dmg)
	command -v hdiutil >/dev/null || { echo "make dmg needs macOS (hdiutil)" >&2; exit 1; }
	rm -f "$out/Wrapix-Builder-$version.dmg"
	hdiutil create -volname "Wrapix Builder" -srcfolder "$app" -ov -format UDZO "$out/Wrapix-Builder-$version.dmg" >/dev/null
	echo "$out/Wrapix-Builder-$version.dmg" ;;
*)
	echo "$app" ;;
esac
