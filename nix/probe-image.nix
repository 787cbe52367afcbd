# ccci's probe image, for hosts without a registry: the image named in ../probe-image (the Rust
# constant `PROBE_IMAGE` reads the same file), a static busybox whose applets are what the probe
# containers run (sh, wget and timeout for serving checks; cat, test, rm, find and tar for volume
# reads, writes and restores; sleep in tests), as a docker-archive that
# `ccci-probe-image.service` loads with `docker load`.
#
# The result is a directory: `image.tar.gz` (the archive) and `id` (`sha256:<hex>`, the image id
# Docker gives it, which the loader compares before loading).
{
  dockerTools,
  buildEnv,
  pkgsStatic,
  runCommand,
}:

let
  ccciLib = import ./lib.nix;

  image = dockerTools.buildImage {
    name = ccciLib.probeImageName;
    tag = ccciLib.probeImageTag;
    copyToRoot = buildEnv {
      name = "ccci-probe-root";
      paths = [ pkgsStatic.busybox ];
      pathsToLink = [ "/bin" ];
    };
    config = {
      Env = [ "PATH=/bin" ];
      Cmd = [ "/bin/sh" ];
    };
  };
in
runCommand "ccci-probe-image"
  {
    passthru = {
      inherit image;
      ref = ccciLib.probeImageRef;
    };
  }
  ''
    ${ccciLib.probeImageIdFunction}
    mkdir "$out"
    ln -s ${image} "$out/image.tar.gz"
    probe_image_id ${image} > "$out/id"
  ''
