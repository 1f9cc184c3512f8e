#!/usr/bin/env bash
# `make demo`: the main job on a Linux machine, as a user would see it. It
# builds wrapix-builder and the test stand-in for Apple's `container` CLI and
# a builder image (image/layout.sh, as image.nix runs it, with Debian's
# busybox, nix and sshd standing in for the aarch64 ones), starts the builder
# (the entrypoint runs as PID 1 in new namespaces, with the container
# version's capabilities and /proc masks, real sshd and nix-daemon), lets setup write the Nix/ssh trust into a
# scratch root, runs a real Nix remote build over ssh-ng from a separate
# host-side /nix with max-jobs 0 (Nix and ssh read setup's files themselves),
# shows status, stops, and cleans up.
# Needs root, nix-bin, openssh-server/-client and busybox-static (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*"; }

work=$(mktemp -d /tmp/wrapix-demo.XXXXXX)
chmod 755 "$work"
serve_pid=""
cleanup() {
	[ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	"$work/bin/wrapix-builder" stop >/dev/null 2>&1 || true
	# the stand-in loop-mounts the store volume (its own ext4, as on a Mac)
	awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | while read -r m; do umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT

step "Build wrapix-builder and the container stand-in"
mkdir -p "$work/bin"
version=$(cat VERSION)   # stamped as `make build` does; the image it runs is tagged with it
go build -ldflags "-X github.com/wrapix/wrapix-builder/builder/version.Version=$version" -o "$work/bin/wrapix-builder" ./cmd/wrapix-builder
go build -o "$work/bin/container" ./internal/standin/container
ok "$("$work/bin/wrapix-builder" --version)"

export PATH="$work/bin:$PATH" HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config"
step "Make the builder image: image/layout.sh (as image.nix runs it) with Debian's busybox, nix and sshd standing in"
mkdir -p "$work/image-build"
img=$(go run ./internal/testenv/mkimage "$work/image-build")
ok "image root $img: $(ls "$img/bin" | wc -l) entries in /bin, seed $(cat "$img/nix-image/seed-id")"

export CONTAINER_STANDIN_STATE="$work/standin" CONTAINER_STANDIN_MODE=e2e CONTAINER_STANDIN_ROOTFS="$img" CONTAINER_STANDIN_IMAGES="wrapix-builder:$version" CONTAINER_STANDIN_SYSTEM=stopped
export CONTAINER_STANDIN_GUEST_ENV='["WRAPIX_SUBSTITUTERS="]'   # no internet here
mkdir -p "$XDG_CONFIG_HOME/wrapix"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 22422)
system=$(uname -m)-linux
printf 'port = %s\nsystems = ["%s"]\nstart-timeout = "60s"\n' "$port" "$system" > "$XDG_CONFIG_HOME/wrapix/config.toml"

step "wrapix-builder start"
wrapix-builder start

step "wrapix-builder status"
wrapix-builder status

step "sudo wrapix-builder setup (into a scratch root instead of /)"
root="$work/root"
# The Mac's /etc before setup: ssh_config includes ssh_config.d (as macOS's does), and an
# administrator's nix.conf (no substituters here, build only remotely, no build users).
mkdir -p "$root/etc/ssh" "$root/etc/nix"
echo 'Include /etc/ssh/ssh_config.d/*' > "$root/etc/ssh/ssh_config"
printf 'build-users-group =\nsubstituters =\nmax-jobs = 0\n' > "$root/etc/nix/nix.conf"
wrapix-builder setup --root "$root"

step "wrapix-builder stop, then wrapix-builder serve (what the login agent runs): the next build wakes the builder"
wrapix-builder stop
wrapix-builder serve 2> "$work/serve.log" &
serve_pid=$!
until grep -q '"pid": '"$serve_pid" "$XDG_DATA_HOME/wrapix/waker.json" 2>/dev/null; do sleep 0.1; done
wrapix-builder status | sed -n '1p;/^Waker/p' || true

step "A real Nix build from a separate host-side /nix, reading only the files setup wrote"
# In a private mount namespace the scratch root's etc/nix and etc/ssh are /etc/nix and /etc/ssh:
# Nix reads /etc/nix/nix.conf and its default builders = @/etc/nix/machines; ssh reads
# /etc/ssh/ssh_config, whose Include reaches the drop-in. No builders option on the command line, nothing rewritten.
mkdir -p "$work/bb/bin" && cp /bin/busybox "$work/bb/bin/busybox" && ln -s busybox "$work/bb/bin/sh"
cat > "$work/hello.nix" <<NIX
let bb = builtins.path { path = $work/bb; name = "busybox"; }; in
derivation { name = "hello-from-wrapix"; system = "$system"; builder = "\${bb}/bin/sh";
  args = [ "-c" "echo hello from the builder, built at \$(\${bb}/bin/busybox date) > \$out" ]; }
NIX
mkdir -p "$work/client-nix" /nix /etc/nix /etc/ssh
out=$(NIX_SSHOPTS= unshare --mount --propagation private -- sh -c 'set -e
	mount --bind "$1/etc/nix" /etc/nix; mount --bind "$1/etc/ssh" /etc/ssh; mount --bind "$2" /nix
	shift 2; exec "$@"' sh "$root" "$work/client-nix" nix-build "$work/hello.nix" --no-out-link)
ok "output $out: $(cat "$work/client-nix/${out#/nix/}")"

sed 's/^/    serve: /' "$work/serve.log"

step "wrapix-builder doctor (the Mac-only checks are skipped here)"
wrapix-builder doctor --root "$root" || true

step "wrapix-builder stop"
wrapix-builder stop
wrapix-builder status >/dev/null && true; ok "status exit code after stop: $? (6 = stopped)"
