# A stand-in for Determinate Systems' nix-darwin module (darwinModules.default
# of github.com/DeterminateSystems/determinate, modules/nix-darwin/default.nix),
# written here from its option names and effects, no code of its own: the
# options the Wrapix Builder module sets, typed as there, and what it does with
# them. It turns nix-darwin's Nix management off (nix.enable forced false),
# writes /etc/nix/nix.custom.conf from `customSettings` and /etc/nix/machines
# from `buildMachines`, both as nix-darwin /etc links it owns. Its releases
# name the options determinateNix.customSettings (now) or
# determinate-nix.settings (before the rename).
{ ns ? "determinateNix", settingsName ? "customSettings" }:
{ config, lib, ... }:
let
  cfg = config.${ns};
  inherit (lib) mkOption types;
  value = v: if builtins.isBool v then (if v then "true" else "false")
    else if builtins.isList v then lib.concatMapStringsSep " " value v
    else toString v;
  field = v: if v == null || v == [ ] then "-" else if builtins.isList v then lib.concatStringsSep "," v else toString v;
in
{
  options.${ns} = {
    enable = mkOption { type = types.bool; default = true; };
    distributedBuilds = mkOption { type = types.bool; default = false; };
    buildMachines = mkOption {
      default = [ ];
      type = types.listOf (types.submodule {
        options = {
          hostName = mkOption { type = types.str; };
          protocol = mkOption { type = types.nullOr (types.enum [ "ssh" "ssh-ng" ]); default = "ssh"; };
          system = mkOption { type = types.nullOr types.str; default = null; };
          systems = mkOption { type = types.listOf types.str; default = [ ]; };
          sshUser = mkOption { type = types.nullOr types.str; default = null; };
          sshKey = mkOption { type = types.nullOr types.str; default = null; };
          maxJobs = mkOption { type = types.int; default = 1; };
          speedFactor = mkOption { type = types.int; default = 1; };
          mandatoryFeatures = mkOption { type = types.listOf types.str; default = [ ]; };
          supportedFeatures = mkOption { type = types.listOf types.str; default = [ ]; };
          publicHostKey = mkOption { type = types.nullOr types.str; default = null; };
        };
      });
    };
    ${settingsName} = mkOption {
      default = { };
      type = types.submodule {
        freeformType = with types; attrsOf (either (nullOr (oneOf [ bool int str ])) (listOf str));
      };
    };
  };

  config = lib.mkIf cfg.enable {
    nix.enable = lib.mkForce false;
    environment.etc."nix/nix.custom.conf".text = lib.concatStrings (lib.mapAttrsToList
      (k: v: lib.optionalString (v != null) "${k} = ${value v}\n")
      (cfg.${settingsName} // lib.optionalAttrs (!cfg.distributedBuilds) { builders = null; }));
    environment.etc."nix/machines" = lib.mkIf (cfg.buildMachines != [ ]) {
      text = lib.concatMapStrings (m: lib.concatStringsSep " " [
        "${lib.optionalString (m.protocol != null) "${m.protocol}://"}${lib.optionalString (m.sshUser != null) "${m.sshUser}@"}${m.hostName}"
        (if m.system != null then m.system else field m.systems)
        (field m.sshKey)
        (toString m.maxJobs)
        (toString m.speedFactor)
        (field (m.supportedFeatures ++ m.mandatoryFeatures))
        (field m.mandatoryFeatures)
        (field m.publicHostKey)
      ] + "\n") cfg.buildMachines;
    };
  };
}
