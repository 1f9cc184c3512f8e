# Plain Nix functions of plain values: what the nix-darwin module writes.
# Only builtins (no nixpkgs), so `nix-instantiate --eval --strict` runs them
# offline; a test checks they equal, byte for byte, what the Go code
# (builder/nixconf) generates for the same settings: one truth, two front ends.
let
  inherit (builtins) concatStringsSep genList stringLength substring elemAt length listToAttrs match toString;

  alias = "wrapix-builder";
  rootKeyPath = "/etc/nix/wrapix_builder_ed25519";
  knownHostsPath = "/etc/nix/wrapix_builder_known_hosts";
  # The module's machines line when activation pins the key the CLI made
  # (nix-darwin's /etc/nix/machines is fixed at evaluation, before the key).
  machinesFile = "/etc/nix/wrapix_builder_machines";

  # base64 of an ASCII string (the host key line), without nixpkgs.
  printable = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  ord = listToAttrs (genList (i: { name = substring i 1 printable; value = i + 32; }) (stringLength printable));
  alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  b64char = n: substring n 1 alphabet;
  div = a: b: builtins.div a b;
  mod = a: b: a - b * (builtins.div a b);
  base64 = s:
    let
      bytes = genList (i: ord.${substring i 1 s}) (stringLength s);
      n = length bytes;
      groups = genList (g: g) (div (n + 2) 3);
      byteAt = i: if i < n then elemAt bytes i else 0;
      enc = g:
        let
          i = g * 3;
          v = (byteAt i) * 65536 + (byteAt (i + 1)) * 256 + (byteAt (i + 2));
          c = k: b64char (mod (div v (if k == 0 then 262144 else if k == 1 then 4096 else if k == 2 then 64 else 1)) 64);
        in
        c 0 + c 1 + (if i + 1 < n then c 2 else "=") + (if i + 2 < n then c 3 else "=");
    in
    concatStringsSep "" (map enc groups);

  dashIfEmpty = l: if l == [ ] then "-" else concatStringsSep "," l;
in
rec {
  inherit alias rootKeyPath knownHostsPath machinesFile base64;

  # Settings: { user, port, systems, maxJobs, speedFactor, features, hostKey, useSubstitutes }

  uri = c: "ssh-ng://${c.user}@${alias}";

  machinesLine = c: machinesLineWithKey c (if c.hostKey == "" then "-" else base64 c.hostKey) + "\n";

  # The line without its newline, with field 8 as given: the base64 host key,
  # or "-" (pinned through the ssh_config alias only).
  machinesLineWithKey = c: key: concatStringsSep " " [
    (uri c)
    (concatStringsSep "," c.systems)
    rootKeyPath
    (toString c.maxJobs)
    (toString c.speedFactor)
    (dashIfEmpty c.features)
    "-"
    key
  ];

  # The nix.buildMachines entry (nix-darwin renders it into /etc/nix/machines).
  buildMachine = c: {
    hostName = alias;
    protocol = "ssh-ng";
    sshUser = c.user;
    sshKey = rootKeyPath;
    systems = c.systems;
    maxJobs = c.maxJobs;
    speedFactor = c.speedFactor;
    supportedFeatures = c.features;
    publicHostKey = base64 c.hostKey;
  };

  sshConfig = c: concatStringsSep "" ([
    "# Managed by wrapix-builder. Remove with: sudo wrapix-builder setup --undo\n"
    "Host ${alias}\n"
    "  HostName 127.0.0.1\n"
    "  Port ${toString c.port}\n"
    "  User ${c.user}\n"
    "  HostKeyAlias ${alias}\n"
    "  IdentityFile ${rootKeyPath}\n"
    "  IdentitiesOnly yes\n"
    "  GlobalKnownHostsFile ${knownHostsPath}\n"
    "  UserKnownHostsFile /dev/null\n"
    "  StrictHostKeyChecking yes\n"
    "  PasswordAuthentication no\n"
    "  KbdInteractiveAuthentication no\n"
    "  ConnectTimeout 360\n" # covers an on-demand start (see builder/nixconf)
    "  ServerAliveInterval 15\n"
    "  ServerAliveCountMax 3\n"
  ]);

  knownHosts = c: concatStringsSep "" [
    "# wrapix-builder host key, managed by wrapix-builder.\n"
    "${alias} ${c.hostKey}\n"
    "[127.0.0.1]:${toString c.port} ${c.hostKey}\n"
    "[localhost]:${toString c.port} ${c.hostKey}\n"
  ];
}
