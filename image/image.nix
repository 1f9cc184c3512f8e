# The Wrapix Builder image: an OCI-layout tarball for `container image load`.
#
# Buildable on aarch64-darwin WITHOUT a Linux builder: every derivation
# written here is a host (pkgsHost) derivation; the only aarch64-linux inputs
# are unmodified top-level packages of pkgsLinux, which come from the binary
# cache. (No .override, pkgsStatic, trivial builders or dockerTools from
# pkgsLinux: those would need an aarch64-linux builder.)
#
# Layout of the root filesystem:
#   /bin/busybox (+ /bin/sh)   the cached dynamic busybox, relocated with the
#   /lib/…                     host's patchelf so it runs while /nix is empty
#   /entrypoint                image/entrypoint.sh
#   /nix-image/store.tar       the tools' closure, outside /nix (the store is
#   /nix-image/registration    a volume mounted over /nix at run time), with
#   /nix-image/{roots,profile,seed-id}   case-hack names stripped
#   /etc/{passwd,group,shadow} root, nobody (the entrypoint adds builder, sshd, nixbld*)
#
# Arguments: pkgsHost (the machine building it), pkgsLinux (aarch64-linux,
# no overlays so hashes match the cache), version.
{ pkgsHost, pkgsLinux, version ? "0.1.0" }:

let
  # The builder's tools. gitMinimal: cached, and no perl/python in the closure.
  seedRoots = [
    pkgsLinux.nix
    pkgsLinux.openssh
    pkgsLinux.coreutils
    pkgsLinux.bashInteractive
    pkgsLinux.gitMinimal
    pkgsLinux.cacert
  ];

  # Only symlinks: a darwin-built path is valid inside the Linux store.
  profile = pkgsHost.buildEnv {
    name = "wrapix-builder-tools";
    paths = seedRoots;
    pathsToLink = [ "/bin" "/etc" "/share" ];
  };

  seedInfo = pkgsHost.closureInfo { rootPaths = seedRoots ++ [ profile ]; };

  busybox = pkgsLinux.busybox;
  glibc = pkgsLinux.glibc;
  libxcrypt = pkgsLinux.libxcrypt;

  rootfs = pkgsHost.runCommand "wrapix-builder-rootfs-${version}" {
    nativeBuildInputs = [ pkgsHost.gnutar pkgsHost.patchelf ];
  } ''
    mkdir -p $out/bin $out/lib $out/nix-image $out/etc $out/tmp $out/var/empty $out/run \
      $out/home/builder $out/root $out/nix $out/wrapix/store $out/wrapix/keys

    # A full busybox before /nix exists: the cached dynamic one, its loader
    # and libraries in /lib.
    cp -L ${busybox}/bin/busybox $out/bin/busybox
    chmod u+w $out/bin/busybox
    for lib in $(patchelf --print-needed $out/bin/busybox); do
      for dir in ${glibc}/lib ${libxcrypt}/lib; do
        if [ -e "$dir/$lib" ]; then cp -L "$dir/$lib" $out/lib/; fi
      done
    done
    cp -L ${glibc}/lib/ld-linux-aarch64.so.1 $out/lib/
    patchelf --set-interpreter /lib/ld-linux-aarch64.so.1 --set-rpath /lib $out/bin/busybox
    ln -s busybox $out/bin/sh

    cp ${./entrypoint.sh} $out/entrypoint
    chmod 755 $out/entrypoint

    # The seed: GNU tar from the host (never bsdtar), reproducible, with
    # macOS's case-hack suffixes stripped from names (not from link targets).
    sed 's|^/||' ${seedInfo}/store-paths > store-paths
    tar -C / --format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 \
      --hard-dereference --transform='flags=r;s/~nix~case~hack~[0-9][0-9]*//g' \
      --verbatim-files-from --files-from=store-paths -cf $out/nix-image/store.tar
    cp ${seedInfo}/registration $out/nix-image/registration
    echo ${profile} > $out/nix-image/profile
    for r in ${builtins.concatStringsSep " " (map toString (seedRoots ++ [ profile ]))}; do echo "$r"; done > $out/nix-image/roots
    basename ${seedInfo} > $out/nix-image/seed-id

    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/false\n' > $out/etc/passwd
    printf 'root:x:0:\nnogroup:x:65534:\n' > $out/etc/group
    printf 'root:*:1::::::\nnobody:*:1::::::\n' > $out/etc/shadow
    chmod 1777 $out/tmp
  '';

  # The OCI image layout, written directly: one uncompressed layer, config,
  # manifest, index with the name annotations `container image load` reads.
  # The tag start runs by default; the version is in the config labels.
  ref = "wrapix-builder:latest";
in
pkgsHost.runCommand "wrapix-builder-image-${version}.tar" {
  nativeBuildInputs = [ pkgsHost.gnutar pkgsHost.jq pkgsHost.coreutils ];
  passthru = { inherit rootfs seedInfo profile; imageRef = ref; };
} ''
  mkdir -p layout/blobs/sha256
  tar -C ${rootfs} --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 --mode=u+w -cf layer.tar .
  layer=$(sha256sum layer.tar | cut -d' ' -f1)
  mv layer.tar layout/blobs/sha256/$layer
  jq -n --arg diff "sha256:$layer" '{
      architecture: "arm64", os: "linux",
      config: { Entrypoint: ["/bin/sh", "/entrypoint"], Env: ["PATH=/bin:/usr/bin"], ExposedPorts: { "22/tcp": {} }, StopSignal: "SIGTERM",
        Labels: { "org.opencontainers.image.version": "${version}" } },
      rootfs: { type: "layers", diff_ids: [$diff] } }' > config.json
  config=$(sha256sum config.json | cut -d' ' -f1)
  mv config.json layout/blobs/sha256/$config
  jq -n --arg c "sha256:$config" --argjson cs "$(stat -c %s layout/blobs/sha256/$config)" \
        --arg l "sha256:$layer" --argjson ls "$(stat -c %s layout/blobs/sha256/$layer)" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs },
      layers: [ { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls } ] }' > manifest.json
  manifest=$(sha256sum manifest.json | cut -d' ' -f1)
  msize=$(stat -c %s manifest.json)
  mv manifest.json layout/blobs/sha256/$manifest
  jq -n --arg m "sha256:$manifest" --argjson ms "$msize" --arg ref "${ref}" '{
      schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [ { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
        platform: { architecture: "arm64", os: "linux" },
        annotations: { "io.containerd.image.name": $ref, "org.opencontainers.image.ref.name": $ref } } ] }' > layout/index.json
  echo '{"imageLayoutVersion":"1.0.0"}' > layout/oci-layout
  chmod -R u+w layout
  tar -C layout --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 -cf $out .
''
