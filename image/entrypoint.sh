#!/bin/sh
# Wrapix Builder's container entrypoint (PID 1). Runs with busybox sh (its
# applets are links in /bin: nixpkgs' busybox is not standalone) while /nix
# may still be empty. It
#   1. finds the persistent store (an ext4 volume or a host directory)
#      mounted at /nix by the runtime itself: no mount of ours, so the
#      container needs no capability beyond the OCI default set,
#   2. initialises it from the image's seed closure on first start — atomic
#      and resumable: paths are unpacked into a staging directory, moved in
#      one by one, registered in the Nix database, and only then is the seed
#      marked done; an image upgrade imports the new closure the same way,
#      never wiping the store,
#   3. writes nix.conf and sshd_config, the builder user and its key,
#   4. runs nix-daemon and sshd, and stops both cleanly on SIGTERM.
#
# Image layout (image/layout.sh): /nix-image/{store.tar,registration,seed-id,
# roots,profile}, /etc/ssl/certs/ca-bundle.crt.
# Settings arrive as WRAPIX_* environment variables from `wrapix-builder start`.
set -eu

log() { echo "wrapix-builder: $*"; }
die() { log "error: $*"; exit 1; }

SEED=${WRAPIX_SEED:-/nix-image}
KEYS=${WRAPIX_KEYS:-/wrapix/keys}
PROGRESS=/run/wrapix/progress
# The tools: this image's profile (valid once seeded), then the previous
# image's (kept as a profile, so an upgrade can use it while importing), then
# the base system.
TOOLS=/nix/var/nix/profiles/wrapix-tools
export PATH="$TOOLS/bin:/bin:/usr/bin:/usr/sbin:/sbin"
if [ -r "$SEED/profile" ]; then
	PATH="$(cat "$SEED/profile")/bin:$PATH"
fi

mkdir -p /run/wrapix /tmp /var/empty /run/sshd /etc/nix /etc/ssh
chmod 1777 /tmp
progress() { echo "$*" > "$PROGRESS.tmp" && mv "$PROGRESS.tmp" "$PROGRESS"; log "$*"; }

# 1. The persistent store is mounted at /nix by the runtime.
grep -q " /nix " /proc/self/mountinfo 2>/dev/null || log "warning: /nix is not a mount: the store will not outlive this container"

# store-index: begin (image_test.go and the store benchmark run this block)
# /nix/store as an indexed directory (docs/store-index.md). Apple's volumes
# are formatted without dir_index and dir_nlink (containerization
# EXT4+Formatter.swift): every lookup in /nix/store scans the whole
# directory, and it holds at most 64998 subdirectories. So, once per volume:
#   1. the two feature bits are set in the live superblock, with aligned
#      4-byte writes through the volume's block device (the container's /dev
#      is a devtmpfs, LinuxContainer.swift; no device cgroup), which the
#      mounted ext4 reads from the same buffer at once. s_flags gets
#      "signed hash": the kernel hashes names with signed chars on a
#      filesystem mounted without dir_index, and decides from s_flags at the
#      next mount. Not online tune2fs: it marks the hash unsigned, so after
#      the next mount names with bytes over 0x7f in directories indexed
#      meanwhile are not found (178 of 300 in docs/store-index.md); nor
#      is e2fsprogs in the image then.
#   2. the existing linear /nix/store is rebuilt: its entries are renamed
#      into a new directory (indexed by ext4 as it grows past a block),
#      which then takes its place. Every step is a rename; an interrupted
#      rebuild is finished at the next start. A store of one block needs no
#      rebuild (it is indexed when it grows).
# Where the device cannot be written, the store stays linear and the
# builder says so (status: the log; the directory-count GC stays on).
# Only busybox (/bin) runs here: the store's own tools move during step 2.
INDEXED=/nix/.wrapix-store-indexed
store_indexed="" store_journal=""
sb_get() {   # DEV OFFSET: the superblock's 32-bit little-endian field
	dd if="$1" bs=4 skip=$(( (1024 + $2) / 4 )) count=1 2>/dev/null | od -An -tu4 | tr -d ' \n'
}
sb_put() {   # DEV OFFSET VALUE: one aligned 4-byte write
	printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $(($3 & 255)) $(($3 >> 8 & 255)) $(($3 >> 16 & 255)) $(($3 >> 24 & 255)))" |
		dd of="$1" bs=4 seek=$(( (1024 + $2) / 4 )) count=1 conv=notrunc 2>/dev/null
}
store_device() {   # the block device of the ext4 filesystem mounted at /nix
	line=$(awk '$5 == "/nix" { l = $0 } END { print l }' /proc/self/mountinfo 2>/dev/null)
	[ -n "$line" ] || return 1
	majmin=$(echo "$line" | awk '{ print $3 }')
	# shellcheck disable=SC2046 # fstype, source, options
	set -- $(echo "$line" | sed 's/.* - //')
	[ "${1:-}" = ext4 ] || return 1
	if [ -b "${2:-}" ]; then echo "$2"; return 0; fi
	name=$(sed -n 's/^DEVNAME=//p' "/sys/dev/block/$majmin/uevent" 2>/dev/null)
	[ -n "$name" ] && [ -b "/dev/$name" ] && echo "/dev/$name"
}
store_features() {   # dir_index and dir_nlink on the store volume, or why not
	dev=$(store_device) || { echo "no ext4 block device for /nix in /dev"; return 1; }
	magic=$(sb_get "$dev" 56) || { echo "cannot read $dev"; return 1; }
	[ $((magic & 65535)) -eq 61267 ] || { echo "no ext4 superblock on $dev"; return 1; }
	compat=$(sb_get "$dev" 92) ro=$(sb_get "$dev" 100) flags=$(sb_get "$dev" 352)
	[ $((compat & 32)) -ne 0 ] && [ $((ro & 32)) -ne 0 ] && return 0
	# metadata_csum: the superblock has a checksum these writes would break
	[ $((ro & 1024)) -eq 0 ] || { echo "$dev has metadata checksums"; return 1; }
	if [ $((compat & 32)) -eq 0 ]; then
		sb_put "$dev" 352 $(( (flags & ~2) | 1 )) || { echo "cannot write $dev"; return 1; }
	fi
	sb_put "$dev" 100 $((ro | 32)) && sb_put "$dev" 92 $((compat | 32)) || { echo "cannot write $dev"; return 1; }
	sync
	[ $(($(sb_get "$dev" 92) & 32)) -ne 0 ] && [ $(($(sb_get "$dev" 100) & 32)) -ne 0 ] || { echo "$dev did not keep the features"; return 1; }
	# A mark found here was made on another volume (gc --compact copies the
	# whole of /nix): this store was written without dir_index.
	rm -f "$INDEXED"
	log "store volume $dev: dir_index and dir_nlink turned on"
}
STOP=/nix/.wrapix-store-stop
store_move() {   # FROM TO: every entry of FROM into TO, a batch at a time, each synced
	# A batch fails → the rest are skipped (the caller undoes); a stop asked
	# for (the STOP file) → the rest are skipped (the next start resumes).
	/bin/find "$1" -mindepth 1 -maxdepth 1 -exec /bin/sh -c '
		[ -e /nix/.wrapix-store-stop ] && exit 0
		/bin/mv -f -- "$@" "$0"/ && /bin/sync || { echo failed > /nix/.wrapix-store-stop; exit 1; }' "$2" {} + 2>&1
	[ -z "$(/bin/ls -A "$1")" ]
}
store_move_stoppable() {   # FROM TO: store_move, ended early by a stop (store_rebuild's trap)
	store_move "$1" "$2" &
	mover=$!
	while :; do
		wait "$mover" || true
		kill -0 "$mover" 2>/dev/null || break   # the trap interrupted wait: wait again
	done
	if [ -e "$STOP" ] && [ "$(cat "$STOP")" = stop ]; then
		sync
		log "stopped while indexing /nix/store; the next start resumes it"
		exit 0
	fi
	# Done is what the directory says, not wait's status (a signal can
	# take that).
	[ -z "$(/bin/ls -A "$1")" ]
}
store_rebuild() {   # /nix/store into a new (indexed) directory, resumable
	# A stop (SIGTERM from `container stop`) ends the moves after the batch
	# under way; the rest of the entrypoint sets its own trap later.
	rm -f "$STOP"
	trap 'stop_asked=1; echo stop > "$STOP"' TERM INT
	rc=0
	store_rebuild_steps || rc=$?
	trap 'stop_asked=1' TERM INT
	rm -f "$STOP"
	return $rc
}
store_rebuild_steps() {
	s=/nix/store new=/nix/.wrapix-store-new old=/nix/.wrapix-store-old
	# Cut between the two renames, or before the old directory went: the
	# new one is in place (and indexed), the old one empty.
	if [ -d "$old" ]; then
		if [ ! -d "$s" ] && [ -d "$new" ]; then /bin/mv "$new" "$s" || return 1; fi
		store_move_stoppable "$old" "$s" && /bin/rmdir "$old" && sync
		return
	fi
	if [ ! -d "$new" ]; then
		[ -d "$s" ] && [ "$(/bin/stat -c %s "$s")" -gt 4096 ] || return 0
		if [ -z "$store_journal" ]; then
			log "warning: /nix/store stays unindexed (the store volume has no journal: made by container before 0.12, and rebuilding the directory without one could lose store paths if the builder stopped mid-way): lookups scan it, and it holds at most 64998 store paths; with container 0.12 or later, \`wrapix-builder gc --compact\` moves the store to a new volume with a journal, indexed at the next start (docs/store-index.md)"
			return 2
		fi
		# The new directory takes about as many blocks as the old one (which
		# keeps its own, so an undo always fits).
		need=$(( $(/bin/stat -c %s "$s") / 1024 * 2 + 4096 ))
		free=$(/bin/df -kP /nix | /bin/awk 'NR == 2 { print $4 }')
		if [ "${free:-0}" -lt "$need" ]; then
			log "warning: /nix/store not indexed yet: it needs $need KiB free on the store volume, $free KiB are (\`wrapix-builder gc\` frees room; the next start tries again)"
			return 2
		fi
		progress "indexing /nix/store (once; $(/bin/stat -c %h "$s") links)…"
		/bin/mkdir "$new" && /bin/chmod "$(/bin/stat -c %a "$s")" "$new" && /bin/chown "$(/bin/stat -c %u:%g "$s")" "$new" || return 1
	else
		progress "indexing /nix/store (resuming)…"
	fi
	if ! store_move_stoppable "$s" "$new"; then
		# Put back what moved, into the old directory's own blocks: the store
		# is never left split between two directories.
		log "indexing /nix/store failed (the error is above); putting the store back"
		trap 'stop_asked=1' TERM INT   # the undo is not cut short
		rm -f "$STOP"
		if store_move "$new" "$s" && /bin/rmdir "$new"; then
			return 2
		fi
		die "/nix/store is split between /nix/store and $new and could not be put back: read \`wrapix-builder logs\`; free room with \`wrapix-builder gc\` and start again, or \`wrapix-builder reset-store --yes\` to start from an empty store"
	fi
	/bin/mv "$s" "$old" && /bin/mv "$new" "$s" && /bin/rmdir "$old" && sync
}
store_index() {
	if [ "${WRAPIX_STORE_BACKEND:-volume}" != volume ]; then return 0; fi
	store_journal=""
	if ! why=$(store_features); then
		log "warning: /nix/store stays unindexed ($why): lookups scan it, and it holds at most 64998 store paths (docs/store-index.md)"
		# A rebuild cut at an earlier start is finished all the same: it
		# needs only renames, and the store must not stay split.
		if [ -d /nix/.wrapix-store-new ] || [ -d /nix/.wrapix-store-old ]; then
			store_rebuild || log "warning: finishing the interrupted indexing of /nix/store failed; the next start tries again"
		fi
		return 0
	fi
	[ -n "$why" ] && echo "$why"
	# has_journal (containerization formats one only when asked: journal=…,
	# which we pass from container 0.12): without one, a rebuild cut by a
	# stop can lose entries (no fsck ever runs), so it is not done.
	[ $(($(sb_get "$(store_device)" 92) & 4)) -ne 0 ] && store_journal=1
	if [ ! -e "$INDEXED" ] || [ -d /nix/.wrapix-store-new ] || [ -d /nix/.wrapix-store-old ]; then
		rc=0
		store_rebuild || rc=$?
		case $rc in
		0) ;;
		2) return 0 ;;
		*) log "warning: indexing /nix/store failed; the next start resumes it"; return 0 ;;
		esac
		echo > "$INDEXED"
		log "/nix/store is indexed"
	fi
	store_indexed=1
}
# store-index: end
# Until the services run, a stop (SIGTERM from `container stop`; PID 1
# ignores a signal it has no handler for) is noted and honoured at the next
# step, instead of being lost while the builder goes on booting.
stop_asked=""
trap 'stop_asked=1' TERM INT
stop_if_asked() { if [ -n "$stop_asked" ]; then sync; log "stopped while starting ($1)"; exit 0; fi; }
store_index
stop_if_asked "after the store index"

mkdir -p /nix/store /nix/var/nix/gcroots /nix/var/nix/profiles /nix/var/nix/daemon-socket

# 2. Users, keys and configuration (written at every start from the settings).
add_line() { grep -q "^$2" "$1" 2>/dev/null || echo "$3" >> "$1"; }
members=""
for i in $(seq 1 32); do members="$members${members:+,}nixbld$i"; done
add_line /etc/group "nixbld:" "nixbld:x:30000:$members"
for i in $(seq 1 32); do
	add_line /etc/passwd "nixbld$i:" "nixbld$i:x:$((30000 + i)):30000:Nix build user $i:/var/empty:/bin/false"
done
add_line /etc/group "builder:" "builder:x:1000:"
add_line /etc/passwd "builder:" "builder:x:1000:1000:Wrapix builder:/home/builder:/bin/sh"
add_line /etc/group "sshd:" "sshd:x:74:"
add_line /etc/passwd "sshd:" "sshd:x:74:74:sshd privsep:/var/empty:/bin/false"
touch /etc/shadow && chmod 600 /etc/shadow
add_line /etc/shadow "builder:" "builder:*:1::::::"   # '*': key-only, and not "locked" for sshd
sed -i 's/^builder:![^:]*:/builder:*:/' /etc/shadow
builder_uid=$(grep '^builder:' /etc/passwd | cut -d: -f3)
builder_gid=$(grep '^builder:' /etc/passwd | cut -d: -f4)
mkdir -p /home/builder/.ssh
cp "$KEYS/authorized_keys" /home/builder/.ssh/authorized_keys || die "no authorized_keys in $KEYS"
chmod 755 /home/builder && chmod 700 /home/builder/.ssh && chmod 600 /home/builder/.ssh/authorized_keys
chown -R "$builder_uid:$builder_gid" /home/builder
cp "$KEYS/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key || die "no host key in $KEYS"
chmod 600 /etc/ssh/ssh_host_ed25519_key

features=$(echo "${WRAPIX_FEATURES:-benchmark big-parallel}" | tr ',' ' ')
{
	echo "build-users-group = nixbld"
	echo "trusted-users = root builder"
	echo "max-jobs = ${WRAPIX_MAX_JOBS:-4}"
	echo "cores = $(c=${WRAPIX_CORES:-0} j=${WRAPIX_MAX_JOBS:-4}; case "$c/$j" in *[!0-9/]* | /* | */ | */0 | 0/*) echo 0 ;; *) n=$((c / j)); [ "$n" -ge 1 ] || n=1; echo "$n" ;; esac)"   # each job its share of the CPUs (0, all, when not told)
	echo "system-features = $features"
	echo "sandbox = ${WRAPIX_SANDBOX:-true}"
	echo "sandbox-fallback = false"        # asked for a sandbox: fail loudly rather than build without one
	echo "experimental-features = nix-command"
	echo "min-free = 0"                    # it would measure the wrong disk; GC is by store size (wrapix-builder gc)
	echo "auto-optimise-store = false"     # no hard links: they misbehave over VirtioFS
	# x86_64-linux: the container runs with `--rosetta`, and containerization
	# registers /run/rosetta/rosetta with binfmt_misc flags CF before this
	# script runs (Vminitd+Rosetta.swift, Binfmt.swift). F opens the
	# interpreter at registration, so it runs "regardless of how the
	# environment changes" (Linux Documentation/admin-guide/binfmt-misc.rst):
	# the Nix sandbox needs no extra-sandbox-paths for it; C (implies O)
	# hands it the binary as an open file, so no path lookup either.
	case " ${WRAPIX_SYSTEMS:-} " in *" x86_64-linux "*) echo "extra-platforms = x86_64-linux" ;; esac
	if [ "${WRAPIX_STORE_BACKEND:-volume}" = directory ]; then echo "use-sqlite-wal = false"; fi
	if [ -n "${WRAPIX_SUBSTITUTERS+set}" ]; then echo "substituters = $WRAPIX_SUBSTITUTERS"; fi
	echo "post-build-hook = /etc/nix/wrapix-post-build-hook"   # build activity: docs/builds.md
	if [ -n "${WRAPIX_TRUSTED_PUBLIC_KEYS:-}" ]; then echo "extra-trusted-public-keys = $WRAPIX_TRUSTED_PUBLIC_KEYS"; fi
} > /etc/nix/nix.conf
# Records a successful build. Builtins only, prints nothing, always exits 0:
# Nix fails the build when its post-build hook fails (runPostBuildHook).
cat > /etc/nix/wrapix-post-build-hook <<'HOOK'
#!/bin/sh
{
	t=${EPOCHREALTIME:-}
	[ -n "$t" ] || t=$(date +%s)
	outs=""
	for p in $OUT_PATHS; do outs="$outs${outs:+,}\"$p\""; done
	b=${DRV_PATH##*/}
	[ -e "/nix/var/wrapix/running/$b" ] || echo "{\"event\":\"start\",\"drv\":\"$DRV_PATH\",\"time\":$t}" >> /nix/var/wrapix/builds.log
	echo "{\"event\":\"success\",\"drv\":\"$DRV_PATH\",\"outputs\":[$outs],\"time\":$t}" >> /nix/var/wrapix/builds.log
	echo "$t" > "/nix/var/wrapix/done/$b"
} </dev/null >/dev/null 2>&1
exit 0
HOOK
chmod 755 /etc/nix/wrapix-post-build-hook

# 3. Seed the store from the image's closure.
seed_id=$(cat "$SEED/seed-id" 2>/dev/null || echo none)
have_id=$(cat /nix/.wrapix-seed-id 2>/dev/null || echo "")
if [ "$seed_id" != none ] && [ "$seed_id" != "$have_id" ]; then
	if [ -z "$have_id" ]; then progress "initialising the store (first start)…"; else progress "importing the new image's tools into the store…"; fi
	staging=/nix/.wrapix-staging
	rm -rf "$staging"            # a half-unpacked earlier attempt is redone, never trusted
	mkdir -p "$staging"
	tar -xf "$SEED/store.tar" -C "$staging"
	# Paths already valid (an upgrade, or a restart after the move step) stay
	# as they are. With no database yet nothing is valid, and no nix-store
	# can run before the seed is in place: every path is new.
	all=$(cd "$staging/nix/store" && for p in *; do echo "/nix/store/$p"; done)
	if [ -e /nix/var/nix/db/db.sqlite ] && command -v nix-store >/dev/null 2>&1; then
		invalid=$(echo "$all" | xargs nix-store --check-validity --print-invalid 2>/dev/null) || die "cannot check the store's paths"
	else
		invalid=$all
	fi
	n=0
	for p in $invalid; do
		name=${p#/nix/store/}
		rm -rf "/nix/store/$name"        # an unregistered leftover is garbage
		mv "$staging/nix/store/$name" "/nix/store/$name"
		n=$((n + 1))
	done
	rm -rf "$staging"
	progress "registering $n new store paths…"
	nix-store --load-db < "$SEED/registration" || die "cannot register the seed closure"
	# GC roots for the builder's own tools: the current seed's roots only.
	rm -rf /nix/var/nix/gcroots/wrapix.new && mkdir -p /nix/var/nix/gcroots/wrapix.new
	i=0
	for r in $(cat "$SEED/roots" 2>/dev/null); do
		i=$((i + 1)); ln -s "$r" "/nix/var/nix/gcroots/wrapix.new/root-$i"
	done
	rm -rf /nix/var/nix/gcroots/wrapix && mv /nix/var/nix/gcroots/wrapix.new /nix/var/nix/gcroots/wrapix
	if [ -r "$SEED/profile" ]; then ln -sfn "$(cat "$SEED/profile")" "$TOOLS.new" && mv -T "$TOOLS.new" "$TOOLS"; fi
	sync
	echo "$seed_id" > /nix/.wrapix-seed-id.tmp && mv /nix/.wrapix-seed-id.tmp /nix/.wrapix-seed-id   # last: now it counts
	progress "store initialised ($n paths)"
fi

# TLS roots: the image's CA bundle, so the builder substitutes by itself
# (builders-use-substitutes). NIX_SSL_CERT_FILE works with every Nix;
# nix.conf's ssl-cert-file exists from Nix 2.15 (older ones warn about it).
export NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt
if nix-daemon --version 2>/dev/null | awk '{split($NF, v, "."); exit !(v[1] > 2 || v[1] == 2 && v[2] >= 15)}'; then
	echo "ssl-cert-file = $NIX_SSL_CERT_FILE" >> /etc/nix/nix.conf
fi

# sshd: reached only through the runtime's port forwarder, which connects
# from the host to the container's vmnet address (apple/container
# RuntimeService.swift startSocketForwarders). So it listens on that address
# alone and takes logins only from the host's side of the subnet (the
# default gateway): other containers on the subnet are refused. The host's
# address on a container network is its gateway, the subnet's first address
# (NetworkVmnet AllocationOnlyVmnetNetwork.swift / ReservedVmnetNetwork.swift
# hand it to vmnet as the host's), and Apple's docs/how-to.md (0.6.0 … 1.2.2)
# shows a request from the host logged inside as from 192.168.64.1. No
# forwarding of any kind (DisableForwarding): our probes run
# `nix-daemon --stdio`, as Nix does. (The Linux stand-in gives the container
# the same network: its own namespace, eth0, a default route via the gateway.)
# sshd-address: begin (image_test.go runs this block in a network namespace)
addr=$(ip -4 -o addr show scope global 2>/dev/null | awk '{sub("/.*", "", $4); print $4; exit}')
[ -n "$addr" ] || die "no IPv4 address on the container's network"
listen=$addr:22
# /proc/net/route: the default route's gateway, little-endian hex.
gw=$(awk '$2 == "00000000" {print $3; exit}' /proc/net/route 2>/dev/null)
[ -n "$gw" ] || die "no default route on the container's network"
from=$(printf '%d.%d.%d.%d' "0x${gw#??????}" "0x$(echo "$gw" | cut -c5-6)" "0x$(echo "$gw" | cut -c3-4)" "0x$(echo "$gw" | cut -c1-2)")
# sshd-address: end
cat > /etc/ssh/sshd_config <<SSHD
ListenAddress $listen
AddressFamily inet
HostKey /etc/ssh/ssh_host_ed25519_key
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers builder@$from
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
DisableForwarding yes
AllowTcpForwarding no
AllowStreamLocalForwarding no
AllowAgentForwarding no
PermitTunnel no
GatewayPorts no
X11Forwarding no
ClientAliveInterval 15
# Nix opens a connection per job and a woken builder gets them all at once;
# sshd's default (10 unauthenticated, then random drops) refused some of 20.
MaxStartups 64:30:256
# Every local user can reach the published port: a connection that has not
# logged in within 30 s (not OpenSSH's 120) gives its pre-auth slot back
# (docs/local-port.md).
LoginGraceTime 30
PidFile /run/sshd.pid
SetEnv PATH=$PATH
SSHD

# Build activity (docs/builds.md): an event log in the store volume, written
# by the post-build hook (successes) and by builds_tick (starts and ends, seen
# by the build directories Nix creates and deletes). Root writes, builder reads.
WB=/nix/var/wrapix
BUILDS_LOG=$WB/builds.log
LOGS=/nix/var/log/nix/drvs
BUILD_DIRS="${TMPDIR:-/tmp} /nix/var/nix/builds"
mkdir -p "$WB/running" "$WB/done" "$WB/dirs"
touch "$BUILDS_LOG"
chmod 755 "$WB" && chmod 644 "$BUILDS_LOG"
build_event() {
	echo "{\"event\":\"$1\",\"drv\":\"$2\",\"time\":${EPOCHREALTIME:-$(date +%s)}}" >> "$BUILDS_LOG"
}
builds_rotate() {   # keep the last 2000 events
	n=$(wc -l < "$BUILDS_LOG") && [ "$n" -gt 2000 ] || return 0
	tail -n 2000 "$BUILDS_LOG" > "$BUILDS_LOG.new" && chmod 644 "$BUILDS_LOG.new" && mv "$BUILDS_LOG.new" "$BUILDS_LOG"
}
for r in "$WB"/running/*; do   # builds cut by the last stop
	[ -f "$r" ] && { build_event interrupted "/nix/store/${r##*/}" || true; }
done
rm -rf "$WB/running" "$WB/done" "$WB/dirs" && mkdir -p "$WB/running" "$WB/done" "$WB/dirs"
builds_rotate || true
echo > /run/wrapix/builds-stamp
cp /run/wrapix/builds-stamp /run/wrapix/builds-stamp.prev
builds_ended=0
# One tick: called with `|| true`, so a failure here never stops the builder.
# While nothing builds it runs builtins only.
builds_tick() {
	ended=""
	for r in "$WB"/running/*; do         # ends: the build directory is gone
		[ -f "$r" ] || continue
		read -r dir < "$r" || dir=""
		[ -n "$dir" ] && [ -d "$dir" ] && continue
		b=${r##*/}
		if [ -e "$WB/done/$b" ]; then rm -f "$WB/done/$b"; else build_event failure "/nix/store/$b"; fi
		rm -f "$r" "$WB/dirs/${dir##*/}"
		ended="$ended $b"
		builds_ended=$((builds_ended + 1))
	done
	if [ "$builds_ended" -ge 200 ]; then builds_ended=0; builds_rotate; fi
	changed=""
	for d in $BUILD_DIRS; do [ -d "$d" ] && ! [ "$d" -ot /run/wrapix/builds-stamp ] && changed=1; done
	[ -n "$changed" ] || return 0
	mv -f /run/wrapix/builds-stamp /run/wrapix/builds-stamp.prev
	echo > /run/wrapix/builds-stamp
	for d in $BUILD_DIRS; do             # starts: a new build directory
		for dir in "$d"/nix-build-*.drv-*; do
			k=${dir##*/}
			[ -d "$dir" ] && ! [ -e "$WB/dirs/$k" ] || continue
			# nix-build-NAME.drv-N (Nix < 2.30) or nix-build-NAME.drv-PID-N (createTempDir/makeTempPath)
			name=${k#nix-build-}; name=${name%.drv-*}.drv
			# Its derivation: the build log Nix created for it (not older than the directory).
			for f in "$LOGS"/*/*-"$name".bz2 "$LOGS"/*/*-"$name"; do
				[ -f "$f" ] && ! [ "$f" -ot "$dir" ] || continue
				rel=${f#"$LOGS"/}; rel=${rel%.bz2}
				base=${rel#*/}
				[ "${base#??????????????????????????????-}" = "$name" ] || continue
				b=${rel%%/*}$base
				[ -e "$WB/running/$b" ] && continue
				echo "$dir" > "$WB/running/$b"
				: > "$WB/dirs/$k"
				[ -e "$WB/done/$b" ] || build_event start "/nix/store/$b"
				break
			done
		done
	done
	# Builds that started and ended between two ticks: a new build log (its
	# directory in the log tree changed) with no build directory, no running
	# marker and no success from the hook failed.
	for sub in "$LOGS"/*/; do
		[ "$sub" -nt /run/wrapix/builds-stamp.prev ] || continue
		for f in "$sub"*; do
			[ -f "$f" ] && [ "$f" -nt /run/wrapix/builds-stamp.prev ] || continue
			rel=${f#"$LOGS"/}; rel=${rel%.bz2}
			b=${rel%%/*}${rel#*/}
			[ -e "$WB/running/$b" ] || [ -e "$WB/done/$b" ] && continue
			case "$ended " in *" $b "*) continue ;; esac   # closed by this tick
			name=${b#*-}
			found=""
			for d in $BUILD_DIRS; do for dir in "$d/nix-build-$name"-*; do [ -d "$dir" ] && found=1; done; done
			[ -z "$found" ] || continue
			build_event start "/nix/store/$b"
			build_event failure "/nix/store/$b"
		done
	done
	for m in "$WB"/done/*; do            # successes whose directory was gone before a tick saw it
		[ -f "$m" ] && ! [ -e "$WB/running/${m##*/}" ] || continue
		name=${m##*/}; name=${name#*-}
		found=""
		for d in $BUILD_DIRS; do for dir in "$d/nix-build-$name"-*; do [ -d "$dir" ] && found=1; done; done
		[ -n "$found" ] || rm -f "$m"
	done
}

# 4. The services. PID 1 forwards SIGTERM and reaps.
daemon_pid="" sshd_pid=""
stop() {
	log "stopping"
	# A garbage collection under way is interrupted (Nix stops it cleanly)
	# rather than waited for: the stop's grace is 15 s. One about to start
	# sees the mark and does not.
	echo > /run/wrapix/stopping
	[ -n "$sshd_pid" ] && kill -TERM "$sshd_pid" 2>/dev/null || true
	[ -n "$daemon_pid" ] && kill -TERM "$daemon_pid" 2>/dev/null || true
	[ -s /run/wrapix/gc.pid ] && kill -TERM "$(cat /run/wrapix/gc.pid)" 2>/dev/null || true
	wait
	log "stopped"
	exit 0
}
stop_if_asked "before the services"
rm -f /run/wrapix/stopping
trap stop TERM INT

nix-daemon &
daemon_pid=$!
sshd_bin=$(command -v sshd) || die "sshd not found"
"$sshd_bin" -D -e -f /etc/ssh/sshd_config &
sshd_pid=$!
progress "ready: sshd on $listen, nix-daemon $(nix-daemon --version 2>/dev/null | sed 's/.* //')"

# Garbage collection by store size: Nix's min-free would measure the wrong
# disk, so the store is measured (df of the ext4 volume, which holds only
# the store; du otherwise) and collected down to WRAPIX_STORE_CAP bytes: at
# WRAPIX_GC_FIRST seconds after ready (default 20: not in the way of the
# build that woke the builder, and within a minute, so a builder woken for
# a few minutes at a time keeps its cap too), then every WRAPIX_GC_EVERY
# seconds of uptime (default an hour). The tools are GC roots.
gc_first=${WRAPIX_GC_FIRST:-20}
gc_every=${WRAPIX_GC_EVERY:-3600}
store_cap=${WRAPIX_STORE_CAP:-0}
store_bytes() {
	if [ "${WRAPIX_GC_MEASURE:-}" = du ] || [ "${WRAPIX_STORE_BACKEND:-volume}" != volume ]; then
		echo $(( $(du -sk /nix/store | cut -f1) * 1024 ))
	else
		echo $(( $(df -kP /nix | awk 'NR==2 {print $3}') * 1024 ))
	fi
}
# An unindexed store (store-index above could not turn dir_index and
# dir_nlink on, or could not rebuild the directory): the kernel refuses
# /nix/store's 64999th subdirectory ("Too many links"), whatever the bytes
# (ext4 lifts the limit only for indexed directories, ext4_inc_count). Its
# link count is then exact, so one stat tells: near the limit, all garbage
# goes. An indexed store has no such limit.
store_dirs_max=${WRAPIX_STORE_DIRS_MAX:-60000}
store_dirs() { echo $(( $(stat -c %h /nix/store) - 2 )); }
gc_dirs_check() {
	dirs=$(store_dirs) || return 0
	[ "$dirs" -gt "$store_dirs_max" ] || return 0
	log "/nix/store holds $dirs directories, near the volume's limit of 64998: collecting all garbage"
	gc_run || true
	dirs=$(store_dirs) || return 0
	if [ "$dirs" -gt "$store_dirs_max" ]; then
		log "warning: /nix/store still holds $dirs directories after garbage collection; at 64998 builds fail with 'Too many links'"
	else
		log "garbage collected: /nix/store holds $dirs directories"
	fi
}
gc_run() {   # nix-store --gc ARGS…, where stop() can interrupt it
	[ ! -e /run/wrapix/stopping ] || return 1
	nix-store --gc "$@" >/dev/null 2>&1 &
	echo $! > /run/wrapix/gc.pid
	# stop() may have looked for the PID just before it was written
	[ ! -e /run/wrapix/stopping ] || kill -TERM $! 2>/dev/null || true
	rc=0
	wait $! || rc=$?
	rm -f /run/wrapix/gc.pid
	return $rc
}
gc_check() {
	[ ! -e /run/wrapix/stopping ] || return 0
	[ "${WRAPIX_STORE_BACKEND:-volume}" = volume ] && [ -z "$store_indexed" ] && { gc_dirs_check || true; }
	[ "$store_cap" -gt 0 ] 2>/dev/null || return 0
	used=$(store_bytes) || return 0
	if [ "$used" -gt "$store_cap" ]; then
		log "store is $used bytes, over its cap of $store_cap: collecting garbage"
		if gc_run --max-freed $((used - store_cap)); then
			log "garbage collected: store is $(store_bytes) bytes"
		fi
	fi
}

# Run until a service dies (then the container stops and status shows it).
# `wait` on the sleep lets the shell reap every child, adopted orphans included.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }
next_gc=$gc_first up=0 gc_pid=""
while alive "$sshd_pid" && alive "$daemon_pid"; do
	sleep 2 &
	wait $! 2>/dev/null || true
	builds_tick || true
	up=$((up + 2))
	# The check runs beside the loop (builds are still followed, and a stop
	# is not held up by a long collection); one at a time.
	if [ "$up" -ge "$next_gc" ] && ! { [ -n "$gc_pid" ] && alive "$gc_pid"; }; then
		next_gc=$((up + gc_every))
		gc_check &
		gc_pid=$!
	fi
done
log "a service exited; stopping the builder"
stop
