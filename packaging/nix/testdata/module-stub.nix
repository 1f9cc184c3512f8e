# Evaluates module.nix with a tiny stand-in for nixpkgs' lib and pkgs (only
# what the module uses), so that `nix-instantiate --eval --strict` finds
# type errors offline. mkIf/mkMerge are kept as data; writeTextDir puts the
# file's text into the path so the test can read it.
{ hostKey ? null, determinate ? false }:
let
  lib = {
    mkOption = o: o;
    mkEnableOption = d: { description = d; };
    mkIf = condition: content: if condition then { _type = "if"; inherit content; } else { _type = "if"; condition = false; }; # like nixpkgs: a false branch is never evaluated
    mkMerge = contents: { _type = "merge"; inherit contents; };
    types = {
      ints = { between = a: b: "int"; positive = "int"; };
      str = "str"; bool = "bool"; port = "port"; path = "path"; package = "package";
      strMatching = r: "str"; listOf = t: "list"; enum = l: "enum"; nullOr = t: "nullOr";
    };
    optionalString = c: s: if c then s else "";
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
    concatStringsSep = builtins.concatStringsSep;
  };
  pkgs = {
    writeTextDir = name: text: { type = "derivation"; outPath = "/nix/store/config-dir:" + name + ":" + text; };
  };
  module = import ../module.nix {
    defaultPackage = p: { outPath = "/nix/store/pkg-wrapix-builder"; };
    defaultImage = p: "/nix/store/img-builder-image.tar";
  };
  settings = {
    enable = true; user = "alice"; cpus = 6; memory = "12GiB"; maxJobs = 6; speedFactor = 2;
    systems = [ "aarch64-linux" ]; supportedFeatures = [ "big-parallel" ]; store = "volume"; port = 2345;
    startAtLogin = true; inherit hostKey determinate;
    imageArchive = "/nix/store/img-builder-image.tar";
    package = { outPath = "/nix/store/pkg-wrapix-builder"; };
  };
  m = module { config = { services.wrapix-builder = settings; users.users = { }; }; inherit lib pkgs; };
in
m.config
