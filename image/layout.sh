#!/bin/sh
# The builder image's root filesystem, in one place: image.nix runs this
# script to make the real (aarch64) image, and the e2e tests
# (internal/testenv) run the same script with Debian's packages standing in
# for nixpkgs' ones, so the stand-in's container root is what ships.
#
# usage: layout.sh OUT   (OUT must not exist or be empty)
# inputs, from the environment:
#   BUSYBOX       busybox binary that runs while /nix is empty (its loader and
#                 libraries come from LIBS, or it is static)
#   APPLETS       file: the applet names to link in /bin, one a line. Needed:
#                 nixpkgs' busybox is built from defconfig without
#                 FEATURE_SH_STANDALONE (pkgs/os-specific/linux/busybox/
#                 default.nix), so `sh` finds mkdir, mount, tar … only as
#                 files on PATH.
#   LIBS          (optional) files copied into /lib
#   ENTRYPOINT    image/entrypoint.sh
#   COMPACT       image/compact.sh (the store copy of `gc --compact`)
#   CA_BUNDLE     PEM file of TLS roots: /etc/ssl/certs/ca-bundle.crt, which
#                 the builder's nix.conf names as ssl-cert-file
#   STORE_ROOT    directory holding nix/store/… of the seed closure (/ when
#                 built by Nix)
#   STORE_PATHS   file: the seed closure, one store path a line
#   REGISTRATION  file: `nix-store --dump-db` of the closure (closureInfo)
#   PROFILE       the tools profile (a store path whose bin/ goes on PATH)
#   ROOTS         file: the builder's own GC roots, one store path a line
#   SEED_ID       identifies this seed (a new one makes an upgrade import)
#   TAR           (optional) GNU tar, default tar
#   TAR_FLAGS     (optional) extra flags for the seed tarball (reproducibility,
#                 case-hack stripping on macOS)
#
# The result:
#   /bin/busybox, /bin/sh, /bin/<applet>   busybox and its applet links
#   /lib/…                                 LIBS
#   /entrypoint                            image/entrypoint.sh
#   /compact.sh                            image/compact.sh
#   /nix                                   empty: the store volume mounts here
#   /nix-image/{store.tar,registration,profile,roots,seed-id}   the seed, outside /nix
#   /etc/{passwd,group,shadow}             root and nobody (the entrypoint adds the rest)
#   /etc/ssl/certs/ca-bundle.crt (+ ca-certificates.crt)        TLS roots
#   /tmp /var/empty /run /home/builder /root /wrapix/keys
set -eu
out=$1
for v in BUSYBOX APPLETS ENTRYPOINT COMPACT CA_BUNDLE STORE_ROOT STORE_PATHS REGISTRATION PROFILE ROOTS SEED_ID; do
	eval "val=\${$v:-}"
	[ -n "$val" ] || { echo "layout.sh: $v is not set" >&2; exit 2; }
done
tar=${TAR:-tar}

mkdir -p "$out/bin" "$out/lib" "$out/nix-image" "$out/etc/ssl/certs" "$out/tmp" "$out/var/empty" "$out/run" \
	"$out/home/builder" "$out/root" "$out/nix" "$out/wrapix/keys"

cp "$BUSYBOX" "$out/bin/busybox"
chmod 755 "$out/bin/busybox"
while read -r applet; do
	case $applet in "" | busybox | */*) continue ;; esac
	ln -sf busybox "$out/bin/$applet"
done < "$APPLETS"
ln -sf busybox "$out/bin/sh"
for lib in ${LIBS:-}; do cp -L "$lib" "$out/lib/"; done

cp "$ENTRYPOINT" "$out/entrypoint"
chmod 755 "$out/entrypoint"
cp "$COMPACT" "$out/compact.sh"
chmod 755 "$out/compact.sh"

sed 's|^/||' "$STORE_PATHS" > "$out/nix-image/.store-paths"
# shellcheck disable=SC2086 # TAR_FLAGS is a list of flags
"$tar" -C "$STORE_ROOT" ${TAR_FLAGS:-} --files-from="$out/nix-image/.store-paths" -cf "$out/nix-image/store.tar"
rm "$out/nix-image/.store-paths"
cp "$REGISTRATION" "$out/nix-image/registration"
echo "$PROFILE" > "$out/nix-image/profile"
cp "$ROOTS" "$out/nix-image/roots"
echo "$SEED_ID" > "$out/nix-image/seed-id"

cp "$CA_BUNDLE" "$out/etc/ssl/certs/ca-bundle.crt"
ln -sf ca-bundle.crt "$out/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/false\n' > "$out/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$out/etc/group"
printf 'root:*:1::::::\nnobody:*:1::::::\n' > "$out/etc/shadow"
chmod 600 "$out/etc/shadow"
chmod 1777 "$out/tmp"
