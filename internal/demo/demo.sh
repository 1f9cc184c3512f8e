#!/usr/bin/env bash
# `make demo`: the main job on a Linux machine, as a user would see it. It
# builds wrapix-builder and the test stand-in for Apple's `container` CLI,
# starts the builder, lets setup write the Nix/ssh trust into a scratch root,
# runs a real Nix remote build over ssh-ng through it from a separate store,
# shows status, stops, and cleans up. Needs root (a local `builder` account),
# nix-bin, openssh-server/-client and busybox-static (.ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
ok() { printf '    \033[32mok\033[0m %s\n' "$*"; }

work=$(mktemp -d /tmp/wrapix-demo.XXXXXX)
chmod 755 "$work"
cleanup() {
	"$work/bin/wrapix-builder" stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

step "Build wrapix-builder and the container stand-in"
mkdir -p "$work/bin"
go build -o "$work/bin/wrapix-builder" ./cmd/wrapix-builder
go build -o "$work/bin/container" ./internal/standin/container
ok "$("$work/bin/wrapix-builder" --version)"

export PATH="$work/bin:$PATH" HOME="$work/home" XDG_DATA_HOME="$work/home/data" XDG_CONFIG_HOME="$work/home/config"
export CONTAINER_STANDIN_STATE="$work/standin" CONTAINER_STANDIN_MODE=sshd CONTAINER_STANDIN_IMAGES=wrapix-builder:latest CONTAINER_STANDIN_SYSTEM=stopped
mkdir -p "$XDG_CONFIG_HOME/wrapix"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 22422)
system=$(uname -m)-linux
printf 'port = %s\nsystems = ["%s"]\nstart-timeout = "60s"\n' "$port" "$system" > "$XDG_CONFIG_HOME/wrapix/config.toml"
id builder >/dev/null 2>&1 || useradd --create-home --shell /bin/sh --password '*' builder

step "wrapix-builder start"
wrapix-builder start

step "wrapix-builder status"
wrapix-builder status

step "sudo wrapix-builder setup (into a scratch root instead of /)"
root="$work/root"
mkdir -p "$root"
wrapix-builder setup --root "$root"

step "A real Nix build from a separate store, through the builder, with the generated config"
sed "s#/etc/nix/#$root/etc/nix/#g" "$root/etc/ssh/ssh_config.d/100-wrapix-builder.conf" > "$work/ssh_config"
line=$(grep '^ssh-ng://' "$root/etc/nix/machines" | sed "s#/etc/nix/#$root/etc/nix/#")
mkdir -p "$work/bb/bin" && cp /bin/busybox "$work/bb/bin/busybox" && ln -s busybox "$work/bb/bin/sh"
cat > "$work/hello.nix" <<NIX
let bb = builtins.path { path = $work/bb; name = "busybox"; }; in
derivation { name = "hello-from-wrapix"; system = "$system"; builder = "\${bb}/bin/sh";
  args = [ "-c" "echo hello from the builder, built at \$(\${bb}/bin/busybox date) > \$out" ]; }
NIX
out=$(NIX_SSHOPTS="-F $work/ssh_config" nix-build "$work/hello.nix" --store "$work/client-store" --max-jobs 0 --no-out-link \
	--option builders-use-substitutes false --option substituters '' --option build-users-group '' --builders "$line")
ok "output $out: $(cat "$work/client-store$out")"

step "wrapix-builder doctor (the Mac-only checks are skipped here)"
wrapix-builder doctor --root "$root" || true

step "wrapix-builder stop"
wrapix-builder stop
wrapix-builder status >/dev/null && true; ok "status exit code after stop: $? (6 = stopped)"
