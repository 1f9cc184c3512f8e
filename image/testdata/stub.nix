# Evaluates image.nix with stub package sets that record what is built
# where. Every function returns { system, kind, args… } instead of a
# derivation; pkgsLinux exposes only the allow-listed packages, so touching
# anything else (an .override, pkgsStatic, a trivial builder) fails here.
# version: what flake.nix passes (the VERSION file).
{ version }:
let
  drv = system: kind: attrs: attrs // { inherit system kind; outPath = "/nix/store/00000000000000000000000000000000-${kind}"; type = "derivation"; };
  host = "aarch64-darwin";
  pkgsHost = {
    buildEnv = args: drv host "buildEnv" { inherit args; };
    closureInfo = args: drv host "closureInfo" { inherit args; };
    runCommand = name: env: script: drv host "runCommand" ({ inherit name env script; passthru = env.passthru or { }; } // (env.passthru or { }));
    gnutar = drv host "gnutar" { };
    patchelf = drv host "patchelf" { };
    jq = drv host "jq" { };
    coreutils = drv host "coreutils" { };
  };
  linuxPkg = name: drv "aarch64-linux" name { pname = name; };
  pkgsLinux = builtins.listToAttrs (map (n: { name = n; value = linuxPkg n; })
    [ "nix" "openssh" "coreutils" "bashInteractive" "gitMinimal" "cacert" "busybox" "glibc" "libxcrypt" ]);
  image = import ../image.nix { inherit pkgsHost pkgsLinux version; };
  rootfs = image.passthru.rootfs;
in {
  imageSystem = image.system;
  rootfsSystem = rootfs.system;
  profileSystem = image.passthru.profile.system;
  seedSystem = image.passthru.seedInfo.system;
  seedRoots = map (p: p.pname or p.kind) image.passthru.seedInfo.args.rootPaths;
  rootfsScript = rootfs.script;
  imageScript = image.script;
  imageRef = image.passthru.imageRef;
}
