# The ccci workspace as one package: every ccci-* binary crate under bins/, and nothing else
# (the abra test double in tests/support/ is never built or installed).
{
  lib,
  rustPlatform,
  git,
}:

let
  cargoToml = builtins.fromTOML (builtins.readFile ../Cargo.toml);

  # One crate per binary, each named like its directory under bins/.
  binDirs = if builtins.pathExists ../bins then builtins.readDir ../bins else { };
  binaries = builtins.filter (n: binDirs.${n} == "directory" && lib.hasPrefix "ccci-" n) (
    builtins.attrNames binDirs
  );
  packageFlags = builtins.concatMap (b: [
    "-p"
    b
  ]) binaries;
in
if binaries == [ ] then
  throw "ccci: no bins/ccci-* crates found"
else
  rustPlatform.buildRustPackage {
    pname = cargoToml.package.name;
    version = cargoToml.workspace.package.version;

    src = lib.fileset.toSource {
      root = ../.;
      fileset = lib.fileset.difference ../. (
        lib.fileset.unions (
          map lib.fileset.maybeMissing [
            ../.git
            ../.ccci-test
            ../target
            ../result
            ../docs
            ../nix
            ../flake.nix
            ../flake.lock
          ]
        )
      );
    };

    cargoLock.lockFile = ../Cargo.lock;

    # Only the ccci-* crates: a workspace member that is not one of them is never built.
    cargoBuildFlags = packageFlags;
    # Unit tests only; the integration tests need a real Docker Swarm, the sandbox has none.
    cargoTestFlags = packageFlags ++ [
      "-p"
      cargoToml.package.name
      "--lib"
      "--bins"
    ];
    nativeCheckInputs = [ git ];

    postInstall = ''
      for f in "$out"/bin/*; do
        case "''${f##*/}" in
          ccci-*) ;;
          *) echo "not installing $f: not a ccci-* binary"; rm -f "$f" ;;
        esac
      done
      mkdir -p "$out/share/ccci/overlays"
      if [ -d overlays ]; then cp -R overlays/. "$out/share/ccci/overlays/"; fi
      # Found next to the binaries when CCCI_ALLOWLIST is not set (the NixOS module sets it).
      if [ -f allowlist ]; then cp allowlist "$out/share/ccci/allowlist"; fi
    '';

    passthru = { inherit binaries; };

    meta = {
      inherit (cargoToml.package) description;
      license = lib.licenses.agpl3Plus;
      platforms = lib.platforms.linux;
      mainProgram = "ccci-deploy";
    };
  }
