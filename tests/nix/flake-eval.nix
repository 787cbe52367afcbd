# Test-only: evaluates flake.nix's outputs with a stub `nixpkgs` input (callPackage records
# what it was called with), to check the outputs' shape without nixpkgs.
let
  flake = import ../../flake.nix;
  systems = [
    "x86_64-linux"
    "aarch64-linux"
  ];
  pkgsFor = system: {
    stdenv.hostPlatform.system = system;
    callPackage = fn: args: {
      callPackage = toString fn;
      inherit args system;
    };
    writeText = name: text: { inherit name text; };
  };
  nixpkgs = {
    lib.genAttrs =
      names: f:
      builtins.listToAttrs (
        map (name: {
          inherit name;
          value = f name;
        }) names
      );
    legacyPackages = builtins.listToAttrs (
      map (name: {
        inherit name;
        value = pkgsFor name;
      }) systems
    );
  };
  self = flake.outputs { inherit self nixpkgs; };
  module = self.nixosModules.default {
    lib.mkDefault = value: {
      _type = "override";
      priority = 1000;
      inherit value;
    };
    pkgs = pkgsFor "x86_64-linux";
  };
in
{
  inherit (flake) description;
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  packageSystems = builtins.attrNames self.packages;
  packages = builtins.mapAttrs (_: p: builtins.attrNames p) self.packages;
  default = self.packages.x86_64-linux.default;
  pipeline = self.packages.x86_64-linux.drone-pipeline;
  aarch64Pipeline = builtins.fromJSON self.packages.aarch64-linux.drone-pipeline.text;
  moduleImports = map toString module.imports;
  modulePackage = module.services.ccci.package;
  libBinaries = self.lib.binaries;
}
