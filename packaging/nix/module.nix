# nix-darwin module: darwinModules.default of the flake.
#
#   system.primaryUser = "alice";
#   services.wrapix-builder.enable = true;
#
# Keys are generated at run time, per user, by `wrapix-builder start`; no
# private key ever enters the Nix store. Activation installs root's copy of
# the user's client key in /etc/nix (0600) and, unless `hostKey` is given,
# the pinned host key from where the CLI keeps it. Everything else comes from
# ./lib.nix, the same text the CLI's `config` and `setup` produce. The options
# accept exactly what the CLI's config.toml accepts (builder/config): a test
# feeds both the same values.
{ defaultPackage ? null, defaultImage ? null }:
{ config, lib, pkgs, options, ... }:

let
  cfg = config.services.wrapix-builder;
  wlib = import ./lib.nix;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types optionalString escapeShellArg concatStringsSep;

  user = if cfg.user == null then "" else cfg.user;
  home = config.users.users.${user}.home or null;
  homeDir = if home == null then "/Users/${user}" else home;
  dataDir = "${homeDir}/.local/share/wrapix";
  keysDir = "${dataDir}/builder-keys";

  # builder/config's checks, as option types (the messages name the option,
  # the file that set it and these descriptions).
  intIn = lo: hi: types.ints.between lo hi;
  # config.ParseSize: digits, optional blanks, K/M/G/T/P, optional iB or B,
  # any case, surrounding blanks trimmed; then a range in bytes.
  sizeBytes = s:
    let
      m = builtins.match "[[:space:]]*0*([0-9]*)[[:space:]]*([KMGTPkmgtp])([Ii][Bb]|[Bb])?[[:space:]]*" s;
      digits = builtins.elemAt m 0;
      shift = { K = 10; M = 20; G = 30; T = 40; P = 50; }.${lib.toUpper (builtins.elemAt m 1)};
      n = if digits == "" then 0 else lib.toIntBase10 digits;
      pow2 = k: if k == 0 then 1 else 2 * pow2 (k - 1);
    in
    if m == null || builtins.stringLength digits > 18 || n > pow2 (62 - shift) then null else n * pow2 shift;
  size = lo: hi: what: types.addCheck types.str (s: let b = sizeBytes s; in b != null && b >= lo && b <= hi) // {
    description = what;
  };
  feature = types.strMatching "[a-z0-9][a-z0-9_.-]*";
  # One ed25519 host key line (the builder's key type; builder/nixconf
  # refuses others), "type base64": what `cut -d' ' -f1,2 host_ed25519.pub`
  # gives; a trailing newline (builtins.readFile) or comment is dropped.
  hostKeyLine = types.addCheck types.str (s: builtins.match "ssh-ed25519 [A-Za-z0-9+/]{68}([ \t][^\n]*)?\n?" s != null) // {
    description = ''a public key line "ssh-ed25519 AAAA…" (as in host_ed25519.pub)'';
  };
  firstTwoFields = s: concatStringsSep " " (lib.take 2 (builtins.filter (w: builtins.isString w && w != "") (builtins.split "[ \t\n]+" s)));

  toml = v: if builtins.isList v then "[" + concatStringsSep ", " (map toml v) + "]"
    else if builtins.isString v then builtins.toJSON v
    else if builtins.isBool v then (if v then "true" else "false")
    else toString v;
  configText = ''
    cpus = ${toml cfg.cpus}
    memory = ${toml cfg.memory}
    port = ${toml cfg.port}
    systems = ${toml cfg.systems}
    max-jobs = ${toml cfg.maxJobs}
    speed-factor = ${toml cfg.speedFactor}
    supported-features = ${toml cfg.supportedFeatures}
    store = ${toml cfg.store}
    idle-stop = ${toml cfg.idleStop}
  '' + optionalString (cfg.imageArchive != null) ''
    image-archive = ${toml "${cfg.imageArchive}"}
  '';
  configDir = pkgs.writeTextDir "config.toml" configText;

  settings = {
    user = "builder";
    inherit (cfg) port systems maxJobs speedFactor;
    features = cfg.supportedFeatures;
    hostKey = if cfg.hostKey == null then "" else cfg.hostKey;
  };
  machine = wlib.buildMachine settings;
  # Where the builders entry goes: Determinate Systems' own nix-darwin module
  # (github.com/DeterminateSystems/determinate, modules/nix-darwin/default.nix)
  # owns /etc/nix/machines and nix.custom.conf as /etc links, so with it the
  # builder goes in through its options; otherwise marked blocks (determinate)
  # or nix-darwin's nix.* options.
  # Its options are determinateNix.* (customSettings), determinate-nix.*
  # (settings) before the rename.
  determinateNS = if options ? determinateNix then "determinateNix" else if options ? "determinate-nix" then "determinate-nix" else null;
  determinateSettings = if determinateNS == "determinateNix" then "customSettings" else "settings";
  hasDeterminateModule = determinateNS != null;
  viaDeterminateModule = hasDeterminateModule && config.${determinateNS}.enable;
  markedBlocks = cfg.determinate && !viaDeterminateModule;
  # Activation writes the machines line itself (issue 18.4): see below.
  ownLineFile = !markedBlocks && cfg.hostKey == null;
  buildersSetting = "@/etc/nix/machines;@${wlib.machinesFile}";

  # The agent's PATH: launchd gives agents only /usr/bin:/bin:/usr/sbin:/sbin
  # (nix-darwin's `path` is empty by default); Apple's installer puts
  # `container` in /usr/local/bin, Nix lives in the profiles.
  agentPath = [
    "${cfg.package}/bin"
    "/usr/local/bin"
    "/etc/profiles/per-user/${user}/bin"
    "${homeDir}/.nix-profile/bin"
    "/run/current-system/sw/bin"
    "/nix/var/nix/profiles/default/bin"
    "/usr/bin"
    "/bin"
    "/usr/sbin"
    "/sbin"
  ];
  logFile = "${homeDir}/Library/Logs/wrapix-builder.log";

  # Files an earlier `sudo wrapix-builder setup` leaves (builder/setup): its
  # journal, its own files, and its marked blocks in shared files. nix-darwin
  # aborts a switch over any of them ("Unexpected files in /etc").
  setupLeftovers = ''
    # wrapix-builder: files left by `sudo wrapix-builder setup`
    wrapixLeft=()
    [[ -e /etc/nix/wrapix_builder_setup.json ]] && wrapixLeft+=(/etc/nix/wrapix_builder_setup.json)
    # The module links the drop-in from /etc/static; setup wrote a file. (The
    # known-hosts file is written by both, so only the journal tells.)
    f=/etc/ssh/ssh_config.d/100-wrapix-builder.conf
    if [[ -e $f && ! -L $f ]]; then wrapixLeft+=("$f"); fi
    for f in /etc/nix/nix.conf /etc/nix/machines /etc/nix/nix.custom.conf; do
      if [[ -f $f ]] && grep -qE '^# BEGIN wrapix-builder \(managed by `?wrapix-builder setup' "$f"; then wrapixLeft+=("$f"); fi
    done
    if (( ''${#wrapixLeft[@]} )); then
      printf >&2 '\e[1;31merror: files from an earlier `sudo wrapix-builder setup`, aborting activation\e[0m\n'
      printf >&2 'services.wrapix-builder manages these itself now:\n\n'
      printf >&2 '  %s\n' "''${wrapixLeft[@]}"
      printf >&2 '\nRemove them with `sudo wrapix-builder setup --undo` (it restores what was there before), then switch again.\n'
      exit 2
    fi
    # wrapix-builder: end of the setup check
  '';

  # Nix not managed by nix-darwin (nix.enable = false: Determinate's or the
  # official installer): the installer's files stay the user's; we keep one
  # marked block in /etc/nix/machines (read through Nix's default
  # `builders = @/etc/nix/machines`) and one in the file nix.conf reads
  # settings from, like `wrapix-builder setup` does.
  determinateActivation = ''
    # Wrapix Builder (Determinate Nix): marked blocks in the shared files.
    ${builtins.readFile ./block.sh}
    wrapixChanged="" wrapixDamaged=""
    if wrapixOut=$(wrapix_set_block /etc/nix/machines "$wrapixLine"$'\n'); then
      wrapixChanged+=$wrapixOut
    else
      wrapixDamaged=1
    fi
    # builders-use-substitutes goes where Nix reads it: Determinate's
    # installer's nix.conf includes nix.custom.conf, the official installer's
    # includes nothing (issue 18.3), so there nix.conf itself gets the block.
    # It only speeds builds up: a file the configuration declares itself (a
    # link, status 2) is a warning.
    wrapixConf=/etc/nix/nix.custom.conf
    if ! grep -qE '^[[:space:]]*!?include[[:space:]]+(/etc/nix/)?nix\.custom\.conf[[:space:]]*$' /etc/nix/nix.conf 2>/dev/null; then
      wrapixConf=/etc/nix/nix.conf
    fi
    wrapixRc=0
    wrapixOut=$(wrapix_set_block "$wrapixConf" ${escapeShellArg "builders-use-substitutes = true\n"}) || wrapixRc=$?
    case $wrapixRc in
      0) wrapixChanged+=$wrapixOut ;;
      2) ;;
      *) wrapixDamaged=1 ;;
    esac
    wrapixForeign=$(wrapix_foreign_builders /etc/nix/nix.conf; wrapix_foreign_builders /etc/nix/nix.custom.conf)
    if [[ -n $wrapixForeign ]]; then
      printf >&2 'wrapix-builder: warning: a `builders` setting makes Nix ignore /etc/nix/machines:\n%s\n' "$wrapixForeign"
    fi
    if [[ -n $wrapixChanged ]]; then
      echo "wrapix-builder: restarting the nix-daemon for the new builders entry" >&2
      # Determinate's installer also installs upstream Nix (nix.custom.conf
      # too, but the daemon is org.nixos.nix-daemon): restart the installed one.
      wrapixDaemon=org.nixos.nix-daemon
      if [[ -e /Library/LaunchDaemons/systems.determinate.nix-daemon.plist ]]; then
        wrapixDaemon=systems.determinate.nix-daemon
      fi
      launchctl kickstart -k "system/$wrapixDaemon" || true
    fi
    if [[ -n $wrapixDamaged ]]; then
      exit 1
    fi
  '';
in
{
  options.services.wrapix-builder = {
    enable = mkEnableOption "Wrapix Builder, an aarch64-linux Nix remote builder in an Apple container";
    package = mkOption {
      type = types.package;
      default = defaultPackage pkgs;
      defaultText = "the flake's package (the app bundle with the CLI)";
      description = "The Wrapix Builder package (the CLI, and the app on macOS).";
    };
    user = mkOption {
      type = types.nullOr types.str;
      default = config.system.primaryUser;
      defaultText = lib.literalExpression "config.system.primaryUser";
      description = ''
        The macOS user who runs the builder; its keys live in that user's ~/.local/share/wrapix.
        nix-darwin installs user launch agents for `system.primaryUser` only, so with
        `startAtLogin` the two must be the same user.
      '';
    };
    cpus = mkOption { type = intIn 1 64; default = 4; description = "CPUs of the builder container."; };
    memory = mkOption {
      type = size 1073741824 1099511627776 ''a size with a unit from "1GiB" to "1TiB", e.g. "8GiB" or "6144MiB"'';
      default = "8GiB";
      description = "Memory of the builder container, with a unit.";
    };
    maxJobs = mkOption { type = intIn 1 256; default = cfg.cpus; defaultText = "cpus"; description = "Parallel builds Nix sends to the builder."; };
    speedFactor = mkOption { type = intIn 1 100; default = 1; description = "Nix's preference for this builder."; };
    systems = mkOption {
      type = types.nonEmptyListOf (types.enum [ "aarch64-linux" "x86_64-linux" ]);
      default = [ "aarch64-linux" ];
      apply = lib.unique;
      description = "Systems the builder builds for. x86_64-linux runs through Rosetta: it needs Apple's container 0.7.0 or newer and Rosetta (`softwareupdate --install-rosetta --agree-to-license`); `wrapix-builder start` and `doctor` check both.";
    };
    supportedFeatures = mkOption {
      type = types.listOf feature;
      default = [ "benchmark" "big-parallel" ];
      apply = lib.unique;
      description = "Nix system features of the builder (lower-case names).";
    };
    store = mkOption { type = types.enum [ "volume" "directory" ]; default = "volume"; description = "Where the builder's /nix lives: an Apple named volume, or builder-nix/ in the data directory."; };
    port = mkOption { type = intIn 1024 65535; default = 2222; description = "Loopback port of the builder's sshd (1024–65535)."; };
    startAtLogin = mkOption { type = types.bool; default = true; description = "Run `wrapix-builder serve` at login (a launch agent for `system.primaryUser`): it starts the builder when Nix connects and stops it when idle (docs/on-demand.md)."; };
    idleStop = mkOption {
      type = types.strMatching "0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+";
      default = "30m";
      example = "2h";
      description = ''Stop the builder after this long with no connection and no build ("30m", "2h"; "0" = never); the CLI allows 1s to 24h.'';
    };
    hostKey = mkOption {
      type = types.nullOr hostKeyLine;
      default = null;
      apply = k: if k == null then null else firstTwoFields k;
      example = lib.literalExpression ''builtins.readFile ./host_ed25519.pub'';
      description = "The builder's public host key line (`cat ~/.local/share/wrapix/builder-keys/host_ed25519.pub`). When null, activation pins the key the CLI generated.";
    };
    imageArchive = mkOption {
      type = types.nullOr types.path;
      default = if defaultImage == null then null else defaultImage pkgs;
      defaultText = "the flake's builder-image (assembled on the Mac, no Linux builder needed)";
      description = "OCI-layout tar that `wrapix-builder start` loads when the image is missing.";
    };
    configText = mkOption {
      type = types.str;
      readOnly = true;
      internal = true;
      default = configText;
      description = "The config.toml the module gives the CLI and the app (read by builder/config).";
    };
    determinate = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Nix is not managed by nix-darwin (`nix.enable = false`, as nix-darwin requires with
        Determinate): the builders entry goes into marked blocks in /etc/nix/machines and in the
        file the installer's nix.conf reads settings from (/etc/nix/nix.custom.conf when nix.conf
        includes it, as Determinate's installer writes it; nix.conf itself with the official
        installer), which otherwise stay as they are. Not needed
        with Determinate's own nix-darwin module (`determinateNix.enable`): the builder then goes in
        through `determinateNix.buildMachines` and `determinateNix.customSettings`.
      '';
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = [
        {
          assertion = cfg.user != null;
          message = "services.wrapix-builder.user is not set: set system.primaryUser (or services.wrapix-builder.user) to the macOS user who runs the builder.";
        }
        {
          assertion = cfg.startAtLogin -> cfg.user == config.system.primaryUser;
          message = "services.wrapix-builder.user = \"${user}\" but nix-darwin installs launch agents for system.primaryUser = ${builtins.toJSON config.system.primaryUser}: set system.primaryUser = \"${user}\", or startAtLogin = false.";
        }
        {
          assertion = config.nix.enable || cfg.determinate || viaDeterminateModule;
          message = "services.wrapix-builder: nix.enable = false, so nix-darwin writes no nix.conf or machines file and the builder would be silently dropped: set services.wrapix-builder.determinate = true (Nix from Determinate's or the official installer: marked blocks in its files), import Determinate's nix-darwin module, or turn nix.enable back on.";
        }
        {
          assertion = cfg.determinate -> !config.nix.enable;
          message = "services.wrapix-builder.determinate = true needs nix.enable = false (nix-darwin refuses to activate over Determinate and moves /etc/nix/nix.custom.conf aside when it manages Nix).";
        }
      ];

      environment.systemPackages = [ cfg.package ];
      environment.variables.WRAPIX_CONFIG_DIR = "${configDir}";
      environment.etc."ssh/ssh_config.d/100-wrapix-builder.conf".text = wlib.sshConfig settings;

      # Before nix-darwin's own /etc check, so the message names the cause.
      system.checks.text = setupLeftovers;

      system.activationScripts.postActivation.text = ''
        # Wrapix Builder. The user's files are read and made as the user (sudo
        # --user, as nix-darwin's own activation does), never followed as root.
        wrapixUser=${escapeShellArg user}
      '' + optionalString (ownLineFile || markedBlocks) ''
        # Field 8 of the machines line: the host key in base64, or "-" until
        # the CLI has made one (ssh_config's known hosts pin it meanwhile).
        wrapixKey64=${if cfg.hostKey == null then "-" else wlib.base64 cfg.hostKey}
      '' + ''
        if ! id -- "$wrapixUser" >/dev/null 2>&1; then
          echo "wrapix-builder: user $wrapixUser does not exist; set services.wrapix-builder.user (or system.primaryUser) to the macOS user who runs the builder" >&2
        else
          # The module's settings for the app too (GUI apps do not see
          # environment.variables), never over a config.toml the user wrote; a
          # missing ~/.config is made by the user, so it is theirs, not root's.
          # A link is replaced only when an earlier activation made it (into a
          # `…-config.toml` store path): the user's own link (dotfiles,
          # home-manager) is the user's file.
          cfgfile=${escapeShellArg "${homeDir}/.config/wrapix/config.toml"}
          cfglink=$(sudo --user="$wrapixUser" -- readlink "$cfgfile" 2>/dev/null || true)
          if { [ ! -e "$cfgfile" ] && [ ! -L "$cfgfile" ]; } || [[ $cfglink =~ ^/nix/store/[0-9a-z]{32}-config\.toml/config\.toml$ ]]; then
            sudo --user="$wrapixUser" -- mkdir -p "$(dirname "$cfgfile")"
            sudo --user="$wrapixUser" -- ln -sfn ${configDir}/config.toml "$cfgfile"
          else
            echo "wrapix-builder: leaving $cfgfile alone; the module's settings are in ${configDir}/config.toml" >&2
          fi
          # Root's copy of the client key (0600, never in the Nix store). The
          # CLI checks the user's files as `setup` does (no links, regular
          # files of the user's, at most 16 KiB: keys.LoadOwned) and writes the
          # parsed key encoded again, never the user's bytes. Activation is
          # root acting on its own configuration, not for whoever ran sudo
          # (the CLI lets a sudo caller copy only their own key): no SUDO_UID.
          if ! wrapixUID=$(id -u -- "$wrapixUser") ||
            ! env -u SUDO_UID -u PKEXEC_UID ${cfg.package}/bin/wrapix-builder --data-dir ${escapeShellArg dataDir} --config-dir ${configDir} keys root-copy --for-uid "$wrapixUID" --out ${wlib.rootKeyPath}; then
            echo "wrapix-builder: root's copy of the client key not installed (see above); run \`wrapix-builder start\` as $wrapixUser, then switch again" >&2
          fi
      '' + optionalString (cfg.hostKey == null) ''
          # The pinned host key the CLI generated: one ed25519 line, or nothing.
          key=$(sudo --user="$wrapixUser" -- head -n 1 ${escapeShellArg "${keysDir}/host_ed25519.pub"} 2>/dev/null | cut -d' ' -f1,2 || true)
          if [[ $key =~ ^ssh-ed25519\ [A-Za-z0-9+/]{68}$ ]]; then
            wrapixKey64=$(printf '%s' "$key" | base64 | tr -d '\n')
            printf '# wrapix-builder host key, managed by wrapix-builder.\n${wlib.alias} %s\n[127.0.0.1]:${toString cfg.port} %s\n[localhost]:${toString cfg.port} %s\n' "$key" "$key" "$key" > ${wlib.knownHostsPath}.tmp
            chmod 644 ${wlib.knownHostsPath}.tmp && mv -f ${wlib.knownHostsPath}.tmp ${wlib.knownHostsPath}
          elif [[ -n $key ]]; then
            echo "wrapix-builder: ${keysDir}/host_ed25519.pub is not an ed25519 public key; not pinned" >&2
          fi
      '' + optionalString (cfg.hostKey != null) ''
          # The given host key (written here, not through /etc/static, so switching
          # between a given key and the generated one never trips nix-darwin's /etc check).
          printf '%s' ${escapeShellArg (wlib.knownHosts settings)} > ${wlib.knownHostsPath}.tmp
          chmod 644 ${wlib.knownHostsPath}.tmp && mv -f ${wlib.knownHostsPath}.tmp ${wlib.knownHostsPath}
      '' + ''
        fi
      '' + optionalString (ownLineFile || markedBlocks) ''
        wrapixLine=${escapeShellArg (wlib.machinesLineWithKey settings "")}"$wrapixKey64"
      '' + (if ownLineFile then ''
        # The line Nix reads through nix.conf's builders (nix-darwin's
        # /etc/nix/machines is fixed before the key exists): the key on it
        # pins the builder whatever an earlier ssh_config says.
        if [[ "$(cat ${wlib.machinesFile} 2>/dev/null || true)" != "$wrapixLine" ]]; then
          printf '%s\n' "$wrapixLine" > ${wlib.machinesFile}.tmp
          chmod 644 ${wlib.machinesFile}.tmp && mv -f ${wlib.machinesFile}.tmp ${wlib.machinesFile}
        fi
      '' else ''
        rm -f ${wlib.machinesFile}
      '') + optionalString markedBlocks determinateActivation;

      # nix-darwin wraps `command` in `/bin/wait4path /nix/store && exec …`
      # (modules/launchd/default.nix): at login /nix may not be mounted yet.
      # It runs `serve` (docs/on-demand.md), which owns the port Nix connects to
      # and starts the builder on demand; KeepAlive brings it back if it dies.
      # Interactive: it carries Nix's uploads, which Background would throttle.
      launchd.user.agents.wrapix-builder = mkIf cfg.startAtLogin {
        command = "${cfg.package}/bin/wrapix-builder serve";
        path = agentPath;
        environment.WRAPIX_CONFIG_DIR = "${configDir}";
        serviceConfig = {
          RunAtLoad = true;
          KeepAlive = true;
          ProcessType = "Interactive";
          StandardOutPath = logFile;
          StandardErrorPath = logFile;
        };
      };
    }

    (mkIf (!cfg.determinate && !viaDeterminateModule) {
      nix.distributedBuilds = true;
      # A given key is known now: nix-darwin's machines file carries it.
      # Otherwise activation writes our line, with the key once the CLI made
      # it, to a file of ours that builders names beside the default.
      nix.buildMachines = mkIf (!ownLineFile) [ machine ];
      nix.settings.builders = mkIf ownLineFile buildersSetting;
      nix.settings.builders-use-substitutes = true;
    })

    # Only when that module is imported: its options exist.
    (lib.optionalAttrs hasDeterminateModule (mkIf viaDeterminateModule {
      ${determinateNS} = {
        distributedBuilds = true;
        buildMachines = mkIf (!ownLineFile) [ machine ];
        ${determinateSettings} = mkMerge [
          { builders-use-substitutes = true; }
          (mkIf ownLineFile { builders = buildersSetting; })
        ];
      };
    }))
  ]);
}
