# Evaluates a configuration in REAL nix-darwin (its eval-config.nix and every
# base module, with the real nixpkgs lib); only `pkgs` is a stand-in
# (./pkgs.nix). Returns what the tests check, each forced on its own so a
# failing assertion shows as nix-darwin's own error message.
{ nixDarwin, nixpkgsLib, configuration, wrapixBuilder }:
let
  lib = import (nixpkgsLib + "/lib");
  pkgs = import ./pkgs.nix { inherit lib; };
  eval = import (nixDarwin + "/eval-config.nix") {
    inherit lib;
    specialArgs = { wrapix-builder = wrapixBuilder; };
    modules = [
      configuration
      {
        _module.args.pkgs = lib.mkForce pkgs;
        nixpkgs.hostPlatform = "aarch64-darwin";
        system.stateVersion = 6;
      }
    ];
  };
  inherit (eval) config;
in
{
  inherit config;
  # What `darwin-rebuild switch` evaluates first: the assertions and warnings
  # are raised by system.build.toplevel (modules/system/default.nix).
  toplevel = builtins.seq config.system.build.toplevel "ok";
}
