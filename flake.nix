{
  description = "Wrapix Builder: an aarch64-linux Nix remote builder for Apple-silicon Macs, in an Apple container";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs = { self, nixpkgs }:
    let
      version = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile ./VERSION);
      # The image can be assembled on any of these; its contents are always aarch64-linux.
      hosts = [ "aarch64-darwin" "x86_64-darwin" "aarch64-linux" "x86_64-linux" ];
      forHosts = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) hosts);
    in
    {
      packages = forHosts (system: {
        # `nix build .#builder-image` → an OCI-layout tar for `container image load -i result`.
        # No Linux builder is needed: see image/image.nix.
        builder-image = import ./image/image.nix {
          pkgsHost = nixpkgs.legacyPackages.${system};
          pkgsLinux = nixpkgs.legacyPackages.aarch64-linux;
          inherit version;
        };
      });
    };
}
