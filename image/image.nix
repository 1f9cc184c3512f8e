# The Wrapix Builder image: an OCI-layout tarball for `container image load`.
#
# Buildable on aarch64-darwin WITHOUT a Linux builder: every derivation
# written here is a host (pkgsHost) derivation; the only aarch64-linux inputs
# are unmodified top-level packages of pkgsLinux, which come from the binary
# cache. (No .override, pkgsStatic, trivial builders or dockerTools from
# pkgsLinux: those would need an aarch64-linux builder.)
#
# The root filesystem is laid out by image/layout.sh (shared with the e2e
# stand-in, which runs it with Debian's packages): busybox and its applet
# links in /bin (the cached dynamic busybox, relocated with the host's
# patchelf so it runs while /nix is empty, its libraries in /lib), the
# entrypoint, the seed closure in /nix-image (outside /nix: the store volume
# is mounted at /nix), the CA bundle, the base accounts.
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
  cacert = pkgsLinux.cacert;

  rootfs = pkgsHost.runCommand "wrapix-builder-rootfs-${version}" {
    nativeBuildInputs = [ pkgsHost.gnutar pkgsHost.patchelf ];
  } ''
    # A full busybox before /nix exists: the cached dynamic one, with its
    # loader and libraries in /lib. Its applet links come from its own bin/
    # and sbin/ (CONFIG_INSTALL_NO_USR): it is not standalone.
    libs=${glibc}/lib/ld-linux-aarch64.so.1
    for lib in $(patchelf --print-needed ${busybox}/bin/busybox); do
      for dir in ${glibc}/lib ${libxcrypt}/lib; do
        if [ -e "$dir/$lib" ]; then libs="$libs $dir/$lib"; fi
      done
    done
    for d in ${busybox}/bin ${busybox}/sbin; do
      if [ -d "$d" ]; then ls "$d"; fi
    done > applets
    for r in ${builtins.concatStringsSep " " (map toString (seedRoots ++ [ profile ]))}; do echo "$r"; done > roots

    # The layout shared with the e2e stand-in (image/layout.sh). The seed:
    # GNU tar from the host (never bsdtar), reproducible, with macOS's
    # case-hack suffixes stripped from names (not from link targets).
    BUSYBOX=${busybox}/bin/busybox APPLETS=applets LIBS="$libs" \
    ENTRYPOINT=${./entrypoint.sh} COMPACT=${./compact.sh} CA_BUNDLE=${cacert}/etc/ssl/certs/ca-bundle.crt \
    STORE_ROOT=/ STORE_PATHS=${seedInfo}/store-paths REGISTRATION=${seedInfo}/registration \
    PROFILE=${profile} ROOTS=roots SEED_ID=$(basename ${seedInfo}) TAR=tar \
    TAR_FLAGS="--format=gnu --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 --hard-dereference --transform=flags=r;s/~nix~case~hack~[0-9][0-9]*//g --verbatim-files-from" \
      sh ${./layout.sh} $out

    chmod u+w $out/bin/busybox
    patchelf --set-interpreter /lib/ld-linux-aarch64.so.1 --set-rpath /lib $out/bin/busybox
  '';

  # The OCI image layout, written directly: one uncompressed layer, config,
  # manifest, index with the name annotations `container image load` reads.
  # The tag this version's CLI runs by default (builder/version.Image): each
  # release its own, so an upgrade loads and runs its image, never an older
  # release's left loaded (issue 15). The version is in the labels too.
  ref = "wrapix-builder:${version}";
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
