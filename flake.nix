{
  description = "Wrapix Builder: an aarch64-linux Nix remote builder for Apple-silicon Macs, in an Apple container";

  # Needs a nixpkgs with Go 1.26 (go.mod says `go 1.26.0` and buildGoModule
  # sets GOTOOLCHAIN=local, so an older Go cannot fetch a newer one):
  # nixpkgs-unstable since 2026-02 or nixos-26.05 and later, which have
  # buildGo126Module. flake.lock pins nixpkgs-unstable of 2026-05-21
  # (4a29d733, go_1_26 >= 1.26.2); `nix flake update` moves it.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixpkgs-unstable";

  outputs = { self, nixpkgs }:
    let
      version = builtins.replaceStrings [ "\n" ] [ "" ] (builtins.readFile ./VERSION);
      systems = [ "aarch64-darwin" "x86_64-darwin" "aarch64-linux" "x86_64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system nixpkgs.legacyPackages.${system}; }) systems);
      isDarwin = system: builtins.match ".*-darwin" system != null;
      # ImageFlake: the flake whose builder-image a first start builds when no
      # image is loaded (docs/on-demand.md), pinned to this very revision.
      imageFlake = "github:wrapix/wrapix-builder/${self.rev or "v${version}"}";
      ldflags = [ "-s" "-w" "-X github.com/wrapix/wrapix-builder/builder/version.Version=${version}"
        "-X github.com/wrapix/wrapix-builder/builder/version.ImageFlake=${imageFlake}" ];
      # The Go module's dependencies (go mod vendor), as a fixed-output hash;
      # packaging/flake_test.go recomputes it from go.sum.
      vendorHash = "sha256-gIg5fTSbVgMUWfYqtJwUtXw8QqS2rjzDy1p/65xjuzA=";

      # The Go that go.mod asks for (a test checks the two agree).
      buildGoModule = pkgs: pkgs.buildGo126Module or (throw
        "wrapix-builder needs Go 1.26 (go.mod): use a nixpkgs with buildGo126Module (nixpkgs-unstable since 2026-02, or nixos-26.05 and later)");

      # darwinkit's objc/ffi does `#import <ffi/ffi.h>` and links -lffi
      # (objc/ffi/ffi.go, v0.5.0); nixpkgs' apple-sdk deletes the SDK's ffi
      # headers (pkgs/by-name/ap/apple-sdk/metadata/disallowed-packages.json)
      # and pkgs.libffi installs include/ffi.h: this puts libffi's headers
      # under include/ffi/ too (a buildInput, so cc-wrapper adds -isystem).
      ffiInclude = pkgs: pkgs.runCommand "libffi-include-ffi" { } ''
        mkdir -p $out/include/ffi
        for h in ffi.h ffitarget.h; do
          ln -s ${pkgs.libffi.dev}/include/$h $out/include/ffi/$h
        done
      '';

      cli = pkgs: buildGoModule pkgs {
        pname = "wrapix-builder";
        inherit version vendorHash ldflags;
        src = ./.;
        subPackages = [ "cmd/wrapix-builder" ];
        env.CGO_ENABLED = "0";
        doCheck = false; # the tests need root, sshd and namespaces: `make test`
        postInstall = ''
          mkdir -p $out/share/bash-completion/completions $out/share/zsh/site-functions $out/share/fish/vendor_completions.d
          $out/bin/wrapix-builder completion bash > $out/share/bash-completion/completions/wrapix-builder || true
          $out/bin/wrapix-builder completion zsh > $out/share/zsh/site-functions/_wrapix-builder || true
          $out/bin/wrapix-builder completion fish > $out/share/fish/vendor_completions.d/wrapix-builder.fish || true
        '';
        meta = { description = "Wrapix Builder CLI"; mainProgram = "wrapix-builder"; platforms = nixpkgs.lib.platforms.unix; };
      };

      # The app bundle (macOS): the menu-bar app (cgo: systray is Objective-C) with the CLI inside.
      bundle = pkgs: buildGoModule pkgs {
        pname = "wrapix-builder-app";
        inherit version vendorHash ldflags;
        src = ./.;
        subPackages = [ "app" "cmd/wrapix-builder" "assets/gen" ];
        buildInputs = [ pkgs.libffi (ffiInclude pkgs) ]; # darwinkit's objc calls through libffi
        # rcodesign (apple-codesign) signs the whole bundle ad hoc: nixpkgs'
        # per-file signing (autoSignDarwinBinariesHook, a fixupOutputHook:
        # pkgs/os-specific/darwin/signing-utils/auto-sign-hook.sh) names each
        # Mach-O after its file and binds no Info.plist, and macOS silently
        # drops the notifications of such an app (issue 17 point 5). rcodesign
        # names the main executable after CFBundleIdentifier and seals
        # Info.plist and the resources (apple-codesign src/bundle_signing.rs).
        nativeBuildInputs = [ pkgs.rcodesign ];
        doCheck = false;
        postInstall = ''
          app="$out/Applications/Wrapix Builder.app/Contents"
          mkdir -p "$app/MacOS" "$app/Resources" $out/bin
          mv $out/bin/app "$app/MacOS/wrapix-builder-app"
          mv $out/bin/wrapix-builder "$app/MacOS/wrapix-builder"
          ln -s "$app/MacOS/wrapix-builder" $out/bin/wrapix-builder
          sed "s/@VERSION@/${version}/g" ${./Info.plist} > "$app/Info.plist"
          # The icon Info.plist names, without iconutil (not in the sandbox).
          $out/bin/gen -icns "$app/Resources/AppIcon.icns" && rm $out/bin/gen
          # The image this version runs (built without a Linux builder): a
          # first start loads it, with no repository or network (issue 17.4).
          install -m 0444 ${self.packages.${pkgs.stdenv.hostPlatform.system}.builder-image} "$app/Resources/builder-image.tar"
        '';
        # After fixup (stripping, then the per-file signatures): the bundle's
        # signature binds Info.plist and names org.wrapix.builder, which the
        # bundled CLI checks, failing the build otherwise.
        postFixup = ''
          rcodesign sign "$out/Applications/Wrapix Builder.app"
          "$out/Applications/Wrapix Builder.app/Contents/MacOS/wrapix-builder" check-bundle "$out/Applications/Wrapix Builder.app"
        '';
        meta = { description = "Wrapix Builder menu-bar app"; mainProgram = "wrapix-builder"; platforms = nixpkgs.lib.platforms.darwin; };
      };
    in
    {
      packages = forAll (system: pkgs: {
        wrapix-builder = cli pkgs;
        # `nix build .#builder-image` → an OCI-layout tar for `container image load -i result`;
        # no Linux builder is needed (image/image.nix).
        builder-image = import ./image/image.nix {
          pkgsHost = pkgs;
          pkgsLinux = nixpkgs.legacyPackages.aarch64-linux;
          inherit version;
        };
        default = if isDarwin system then bundle pkgs else cli pkgs;
      });

      apps = forAll (system: pkgs: {
        default = { type = "app"; program = "${self.packages.${system}.wrapix-builder}/bin/wrapix-builder"; };
      });

      devShells = forAll (system: pkgs: {
        default = pkgs.mkShell {
          packages = [ pkgs.go pkgs.gopls pkgs.go-tools pkgs.gnumake pkgs.nix pkgs.openssh ]
            ++ nixpkgs.lib.optionals (!isDarwin system) [ pkgs.busybox pkgs.dbus pkgs.xvfb-run pkgs.xclip ];
        };
      });

      overlays.default = final: prev: { wrapix-builder = self.packages.${prev.stdenv.hostPlatform.system}.default; };

      darwinModules.default = import ./packaging/nix/module.nix {
        defaultPackage = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        defaultImage = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.builder-image;
      };

      checks = forAll (system: pkgs:
        let
          wlib = import ./packaging/nix/lib.nix;
          golden = name: builtins.readFile (./builder/nixconf/testdata + "/${name}-alias.golden");
          settings = {
            user = "builder"; port = 2222; systems = [ "aarch64-linux" ]; maxJobs = 4; speedFactor = 1;
            features = [ "benchmark" "big-parallel" ];
            hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFTmwF2TfZ+RH8NkDsC8tjKvalQehx9UHkKNE1Nzw6fv";
            userKeyPath = "/Users/o'brien smith/.local/share/wrapix/builder-keys/client_ed25519";
          };
          same = wlib.machinesLine settings == golden "machines" && wlib.sshConfig settings == golden "ssh-config" && wlib.knownHosts settings == golden "known-hosts";
        in
        {
          wrapix-builder = self.packages.${system}.wrapix-builder;
          # The module's values equal the Go code's golden output.
          module-matches-cli = pkgs.runCommand "module-matches-cli" { } (if same then "touch $out" else "echo 'packaging/nix/lib.nix differs from builder/nixconf' >&2; exit 1");
        });
    };
}
