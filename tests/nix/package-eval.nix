# Test-only: calls nix/package.nix with stubs for nixpkgs' lib and rustPlatform, and returns the
# arguments it would pass to buildRustPackage (paths as strings, so nothing is copied to the
# store). This checks what the package builds and installs, not that it builds.
let
  inherit (builtins) stringLength substring;

  stubLib = {
    hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
    fileset = {
      toSource =
        { root, fileset }:
        {
          root = toString root;
          inherit fileset;
        };
      difference = base: minus: {
        base = toString base;
        inherit minus;
      };
      unions = sets: sets;
      maybeMissing = toString;
    };
    licenses.agpl3Plus = "agpl3Plus";
    platforms.linux = [ "linux" ];
  };

  args = import ../../nix/package.nix {
    lib = stubLib;
    rustPlatform.buildRustPackage = a: a;
    git = "git";
  };
in
args
// {
  cargoLock.lockFile = toString args.cargoLock.lockFile;
}
