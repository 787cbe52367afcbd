{
  description = "ccci: test harness for Co-op Cloud recipes on a real Docker Swarm";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      ccciLib = import ./nix/lib.nix;
    in
    {
      # Pure functions behind the module: units and the Drone pipeline from settings.
      lib = ccciLib;

      packages = forAllSystems (pkgs: {
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.ccci;
        ccci = pkgs.callPackage ./nix/package.nix { };
        # The recipe CI pipeline with default settings (nix/recipe-ci.drone.yml is this file).
        drone-pipeline = pkgs.writeText "recipe-ci.drone.yml" (
          builtins.toJSON (ccciLib.pipeline { arch = ccciLib.droneArch pkgs.stdenv.hostPlatform.system; })
        );
      });

      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/modules/ccci.nix ];
          services.ccci.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.ccci;
        };
    };
}
