# nix-darwin module: darwinModules.default of the flake.
#
#   services.wrapix-builder = { enable = true; user = "alice"; };
#
# Keys are generated at run time, per user, by `wrapix-builder start`; no
# private key ever enters the Nix store. Activation installs root's copy of
# the user's client key in /etc/nix (0600) and, unless `hostKey` is given,
# the pinned host key from where the CLI keeps it. Everything else comes from
# ./lib.nix, the same text the CLI's `config` and `setup` produce.
{ defaultPackage ? null, defaultImage ? null }:
{ config, lib, pkgs, ... }:

let
  cfg = config.services.wrapix-builder;
  wlib = import ./lib.nix;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types optionalString escapeShellArg concatStringsSep;

  home = if config.users.users ? ${cfg.user} && config.users.users.${cfg.user}.home != null
    then config.users.users.${cfg.user}.home else "/Users/${cfg.user}";
  dataDir = "${home}/.local/share/wrapix";
  keysDir = "${dataDir}/builder-keys";

  toml = v: if builtins.isList v then "[" + concatStringsSep ", " (map toml v) + "]"
    else if builtins.isString v then builtins.toJSON v
    else if builtins.isBool v then (if v then "true" else "false")
    else toString v;
  configDir = pkgs.writeTextDir "config.toml" (''
    cpus = ${toml cfg.cpus}
    memory = ${toml cfg.memory}
    port = ${toml cfg.port}
    systems = ${toml cfg.systems}
    max-jobs = ${toml cfg.maxJobs}
    speed-factor = ${toml cfg.speedFactor}
    supported-features = ${toml cfg.supportedFeatures}
    store = ${toml cfg.store}
  '' + lib.optionalString (cfg.imageArchive != null) ''
    image-archive = ${toml "${cfg.imageArchive}"}
  '');

  settings = {
    user = "builder";
    inherit (cfg) port systems maxJobs speedFactor;
    features = cfg.supportedFeatures;
    hostKey = cfg.hostKey;
    userKeyPath = "${keysDir}/client_ed25519";
  };
  machine = wlib.buildMachine (settings // { hostKey = if cfg.hostKey == null then "" else cfg.hostKey; });
in
{
  options.services.wrapix-builder = {
    enable = mkEnableOption "Wrapix Builder, an aarch64-linux Nix remote builder in an Apple container";
    package = mkOption {
      type = types.package;
      default = defaultPackage pkgs;
      description = "The Wrapix Builder package (the CLI, and the app on macOS).";
    };
    user = mkOption {
      type = types.str;
      description = "The macOS user who runs the builder; its keys live in that user's ~/.local/share/wrapix.";
    };
    cpus = mkOption { type = types.ints.between 1 64; default = 4; description = "CPUs of the builder container."; };
    memory = mkOption { type = types.strMatching "[0-9]+ *[KMGTPkmgtp](i?[Bb])?"; default = "8GiB"; description = "Memory of the builder container, with a unit."; };
    maxJobs = mkOption { type = types.ints.positive; default = cfg.cpus; defaultText = "cpus"; description = "Parallel builds Nix sends to the builder."; };
    speedFactor = mkOption { type = types.ints.positive; default = 1; description = "Nix's preference for this builder."; };
    systems = mkOption { type = types.listOf (types.enum [ "aarch64-linux" "x86_64-linux" ]); default = [ "aarch64-linux" ]; description = "Systems the builder builds for."; };
    supportedFeatures = mkOption { type = types.listOf types.str; default = [ "benchmark" "big-parallel" ]; description = "Nix system features of the builder."; };
    store = mkOption { type = types.enum [ "volume" "directory" ]; default = "volume"; description = "Where the builder's /nix lives: an Apple named volume, or builder-nix/ in the data directory."; };
    port = mkOption { type = types.port; default = 2222; description = "Loopback port of the builder's sshd."; };
    startAtLogin = mkOption { type = types.bool; default = true; description = "Start the builder (and the menu-bar app when installed) at login."; };
    hostKey = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ssh-ed25519 AAAAC3Nza…";
      description = "The builder's public host key line (`cat ~/.local/share/wrapix/builder-keys/host_ed25519.pub`). When null, activation pins the key the CLI generated.";
    };
    imageArchive = mkOption {
      type = types.nullOr types.path;
      default = if defaultImage == null then null else defaultImage pkgs;
      defaultText = "the flake's builder-image (assembled on the Mac, no Linux builder needed)";
      description = "OCI-layout tar that `wrapix-builder start` loads when the image is missing.";
    };
    determinate = mkOption {
      type = types.bool;
      default = false;
      description = "Determinate Nix manages nix.conf: write the builders entry to /etc/nix/nix.custom.conf instead of nix.buildMachines.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      environment.systemPackages = [ cfg.package ];
      environment.variables.WRAPIX_CONFIG_DIR = "${configDir}";
      environment.etc."ssh/ssh_config.d/100-wrapix-builder.conf".text = wlib.sshConfig settings;

      system.activationScripts.postActivation.text = ''
        # Wrapix Builder: the module's settings for the app too (GUI apps do not see
        # environment.variables) — never over a config.toml the user wrote.
        cfgfile=${escapeShellArg "${home}/.config/wrapix/config.toml"}
        if [ ! -e "$cfgfile" ] || [ -L "$cfgfile" ]; then
          install -d -o ${escapeShellArg cfg.user} -g staff "$(dirname "$cfgfile")"
          ln -sfn ${configDir}/config.toml "$cfgfile"
        else
          echo "wrapix-builder: leaving $cfgfile alone; the module's settings are in ${configDir}/config.toml" >&2
        fi
        # Root's copy of the client key (never in the Nix store).
        if [ -f ${escapeShellArg "${keysDir}/client_ed25519"} ]; then
          install -m 600 -o root -g wheel ${escapeShellArg "${keysDir}/client_ed25519"} ${wlib.rootKeyPath}
        else
          echo "wrapix-builder: no keys yet for ${cfg.user}; run \`wrapix-builder start\` as ${cfg.user}, then switch again" >&2
        fi
      '' + optionalString (cfg.hostKey == null) ''
        if [ -f ${escapeShellArg "${keysDir}/host_ed25519.pub"} ]; then
          key=$(cut -d' ' -f1,2 ${escapeShellArg "${keysDir}/host_ed25519.pub"})
          printf '# wrapix-builder host key, managed by wrapix-builder.\n${wlib.alias} %s\n[127.0.0.1]:${toString cfg.port} %s\n[localhost]:${toString cfg.port} %s\n' "$key" "$key" "$key" > ${wlib.knownHostsPath}.tmp
          chmod 644 ${wlib.knownHostsPath}.tmp && mv ${wlib.knownHostsPath}.tmp ${wlib.knownHostsPath}
        fi
      '';

      launchd.user.agents.wrapix-builder = mkIf cfg.startAtLogin {
        serviceConfig = {
          ProgramArguments = [ "${cfg.package}/bin/wrapix-builder" "start" ];
          EnvironmentVariables.WRAPIX_CONFIG_DIR = "${configDir}";
          RunAtLoad = true;
          StandardErrorPath = "/tmp/wrapix-builder-${cfg.user}.log";
        };
      };
    }

    (mkIf (!cfg.determinate) {
      nix.distributedBuilds = true;
      nix.buildMachines = [ (if cfg.hostKey == null then removeAttrs machine [ "publicHostKey" ] else machine) ];
      nix.settings.builders-use-substitutes = true;
    })

    (mkIf cfg.determinate {
      environment.etc."nix/nix.custom.conf".text = ''
        builders = ${wlib.machinesLine (settings // { hostKey = if cfg.hostKey == null then "" else cfg.hostKey; })}builders-use-substitutes = true
      '';
    })

    (mkIf (cfg.hostKey != null) {
      environment.etc."nix/wrapix_builder_known_hosts".text = wlib.knownHosts settings;
    })
  ]);
}
