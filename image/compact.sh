#!/bin/sh
# Wrapix Builder's store copy, for `wrapix-builder gc --compact`
# (docs/reclaim.md). Runs as the only process of a short-lived container made
# from the builder image, with
#   /wrapix/old  the current store volume, read-only (stays authoritative),
#   /nix         a freshly created volume that becomes the store once this
#                script has said so.
# The builder is stopped, so nothing writes the old store: a file copy keeps
# the Nix database consistent with the files (a leftover SQLite WAL is
# copied with it). Only busybox and the store's own Nix are used. The last
# line on success is "wrapix-compact: verified $WRAPIX_COMPACT_TOKEN"; the
# Mac switches to the new volume only after reading exactly that line.
set -eu

log() { echo "wrapix-compact: $*"; }
die() { log "error: $*"; exit 1; }

OLD=/wrapix/old
NEW=/nix
TOKEN=${WRAPIX_COMPACT_TOKEN:?}
[ -d "$OLD/store" ] || die "$OLD holds no Nix store"
[ -d "$NEW" ] || die "$NEW is missing"

# The new volume is fresh, but a redo must not trust anything in it.
find "$NEW" -mindepth 1 -maxdepth 1 ! -name lost+found -exec rm -rf {} +

log "copying the store ($(du -sk "$OLD" | cut -f1) KiB)"
# cp -a keeps owners, modes, times, symlinks and hard links (busybox's cp
# tracks them); lost+found belongs to each filesystem.
for e in "$OLD"/* "$OLD"/.[!.]*; do
	[ -e "$e" ] || [ -L "$e" ] || continue
	[ "${e##*/}" = lost+found ] && continue
	cp -a "$e" "$NEW/"
done
sync

# Verify: the same tree (names, types, modes, owners, sizes, times, link
# targets, link counts; no symlink times: cp cannot set them, and neither
# Nix's hashes nor anything else reads them) …
manifest() {
	(
		cd "$1"
		find . -path ./lost+found -prune -o ! -path . -type d -exec stat -c '%N|%f|%u|%g|%Y' {} +
		find . -path ./lost+found -prune -o -type l -exec stat -c '%N|%f|%u|%g|%h' {} +
		find . -path ./lost+found -prune -o ! -type d ! -type l -exec stat -c '%N|%f|%u|%g|%s|%Y|%h' {} +
	) | sort
}
manifest "$OLD" > /tmp/old.manifest
manifest "$NEW" > /tmp/new.manifest
cmp -s /tmp/old.manifest /tmp/new.manifest || {
	diff /tmp/old.manifest /tmp/new.manifest | head -20
	die "the copy differs from the store"
}
# … the same bytes outside the store's paths (the database, profiles,
# roots, logs; store paths are checked against their registered hashes below) …
(cd "$OLD" && find ./var -type f -exec sha256sum {} + | sort) > /tmp/old.sums
(cd "$NEW" && find ./var -type f -exec sha256sum {} + | sort) > /tmp/new.sums
cmp -s /tmp/old.sums /tmp/new.sums || die "files under /nix/var differ after the copy"
# … and every valid path's contents against its registered hash, by the
# store's own Nix, on the copy (its database is byte-identical to the old one).
nix=""
for p in /nix/var/nix/profiles/wrapix-tools/bin/nix-store "$(cat /nix-image/profile 2>/dev/null)/bin/nix-store"; do
	[ -x "$p" ] && { nix=$p; break; }
done
[ -n "$nix" ] || die "no nix-store in the copied store"
mkdir -p /etc/nix
echo "build-users-group =" > /etc/nix/nix.conf
log "checking every store path's contents"
NIX_REMOTE=local "$nix" --verify --check-contents || die "nix-store --verify --check-contents failed on the copy"
sync
log "verified $TOKEN"
