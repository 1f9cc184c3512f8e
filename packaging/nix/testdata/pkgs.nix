# A stand-in for nixpkgs' top level (nixpkgs itself is too large to ship):
# just enough for nix-darwin's base modules to evaluate on Linux. Every
# package is a derivation-shaped attrset whose outPath names it; the
# trivial builders keep their text so tests can read what would be built.
# Only `pkgs` is stood in: nix-darwin and nixpkgs' lib are the real ones.
{ lib, system ? "aarch64-darwin", libffiDev ? null }:
let
  platform = lib.systems.elaborate system;
  drv = name: attrs: let d = {
    type = "derivation";
    inherit name system;
    outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" (name + builtins.toJSON (builtins.attrNames attrs)))}-${name}";
    drvPath = "/nix/store/standin-${name}.drv";
    outputs = [ "out" ];
    outputName = "out";
    meta = { };
    passthru = { };
    out = d;
  } // attrs; in d;
  package = pname: version: drv "${pname}-${version}" { inherit pname version; meta.mainProgram = pname; };
  names = [
    "bash" "bashInteractive" "coreutils" "findutils" "gnugrep" "gnused" "gnutar" "gzip" "jq" "shellcheck"
    "cacert" "curl" "git" "less" "zsh" "nix-info" "nix-bash-completions" "texinfoInteractive" "man" "openssh"
    "darwin-uninstaller" "rsync" "xz" "nano" "rcodesign"
  ];
  # buildGoModule's result carries the Go it used (passthru.go). The
  # unversioned one is assumed to be older than go.mod wants (the stricter
  # case: nixpkgs moves its default Go later than new Go releases).
  goModule = goVersion: a: drv "${a.pname}-${a.version}" (a // { go = package "go" goVersion; });
  self = lib.genAttrs names (n: package n "1.0") // {
    inherit lib system;
    pkgs = self;
    __splicedPackages = self;
    hostPlatform = platform;
    buildPlatform = platform;
    targetPlatform = platform;
    stdenv = {
      inherit system;
      hostPlatform = platform;
      buildPlatform = platform;
      targetPlatform = platform;
      isDarwin = true;
      shell = "${self.bash}/bin/bash";
      mkDerivation = a: drv (a.name or "${a.pname}-${a.version}") a;
    };
    stdenvNoCC = self.stdenv;
    nix = (package "nix" "2.31.2") // { pname = "nix"; VERSION_SUFFIX = ""; };
    darwin = { cctools = package "cctools" "1.0"; };
    buildGoModule = goModule "1.25.7";
    buildGo125Module = goModule "1.25.7";
    buildGo126Module = goModule "1.26.1";
    # libffi's headers: include/ffi.h and include/ffitarget.h in the dev
    # output (nixpkgs' libffi); a test points libffiDev at such a tree.
    libffi = package "libffi" "3.5.2" // {
      dev = if libffiDev == null then package "libffi-dev" "3.5.2" else { outPath = libffiDev; name = "libffi-3.5.2-dev"; };
    };
    runCommand = name: env: buildCommand: drv name (env // { inherit buildCommand; });
    runCommandLocal = self.runCommand;
    writeText = name: text: drv name { inherit text; };
    writeTextFile = a: drv a.name a;
    writeTextDir = path: text: drv (baseNameOf path) { inherit path text; };
    writeScript = name: text: drv name { inherit text; executable = true; };
    writeShellScript = name: text: drv name { inherit text; executable = true; };
    writeScriptBin = name: text: drv name { inherit text; executable = true; };
    writeShellScriptBin = name: text: drv name { inherit text; executable = true; };
    writeShellApplication = a: drv a.name a;
    buildEnv = a: drv a.name a;
    symlinkJoin = a: drv a.name a;
    substituteAll = a: drv (a.name or "substituted") a;
    replaceVarsWith = a: drv (a.name or "replaced") a;
    callPackage = f: args: drv "callPackage" { };
    formats = {
      toml = _: { type = lib.types.attrs; generate = name: value: drv name { inherit value; }; };
      json = _: { type = lib.types.attrs; generate = name: value: drv name { inherit value; }; };
    };
    appendOverlays = _: self;
    overlays = [ ];
    config = { };
  };
in
self
