# Test-only: evaluates the pure functions of nix/lib.nix for tests/nix/check.sh, with settings
# whose store paths are replaced by directories below `root` (where check.sh links the binaries
# built by cargo, and stubs for abra and the Drone runner).
{
  root,
  # The tag tests/nix/probe_image_test.sh loads a copy of the probe image under.
  probeTestRef ? "ccci-nixcheck-probe:test",
}:

let
  ccci = import ../../nix/lib.nix;

  settings = {
    package = "${root}/pkg";
    abra = "${root}/abra/bin/abra";
    path = [
      "${root}/pkg"
      "${root}/abra"
      "${root}/docker"
    ];
    stateDir = "/var/lib/ccci";
    domainSuffix = "ci.example.org";
    abraServer = "default";
    allowlistFile = "${root}/allowlist";
    leaseTtl = "10m";
    overlaysDir = "${root}/pkg/share/ccci/overlays";
    proxyUrl = "https://127.0.0.1:443";
    proxyCaFile = "${root}/proxy-ca.pem";
    backupbotRepository = "/var/lib/docker/volumes/bb_backups/_data/restic";
    backupbotPasswordFile = "/run/keys/backupbot-password";
    keepOnFailure = false;
    externalNetworks = [
      "proxy"
      "monitoring"
    ];
    extraEnvironment = { };
    environmentFile = "${root}/secrets/ccci.env";
    user = "ccci";
    group = "ccci";
    probeImage = {
      archive = "${root}/probe/image.tar.gz";
      idFile = "${root}/probe/id";
      loader = "${root}/probe/load";
      docker = "${root}/docker";
    };
    janitor = {
      enable = true;
      schedule = "*:0/5";
      dryRun = false;
    };
    runner = {
      enable = true;
      package = "${root}/runner";
      name = "ci-host";
      capacity = 2;
      rpcHost = "drone.example.org";
      rpcProto = "https";
      limitRepos = [ "coop-cloud/recipe-ci" ];
    };
    bridge = {
      enable = true;
      forgeUrl = "https://git.example.org";
      organisation = "coop-cloud";
      repositories = [
        "coop-cloud/custom-html"
        "coop-cloud/gitea"
      ];
      droneUrl = "https://drone.example.org";
      droneRepository = "coop-cloud/recipe-ci";
      forgeTokenFile = "/run/secrets/bridge-forge-token";
      droneTokenFile = "/run/secrets/bridge-drone-token";
      interval = "1min";
      lookback = "2h";
    };
  };

  failing = s: map (a: a.message) (builtins.filter (a: !a.assertion) (ccci.assertions s));

  pipeline = ccci.pipeline { concurrency = settings.runner.capacity; };
in
{
  inherit settings pipeline;
  inherit (ccci)
    binaries
    envFile
    defaultStepMinutes
    killAfterSeconds
    probeImageRef
    probeImageName
    probeImageTag
    probeImageIdFunction
    ;
  # The loader unit's script (check.sh writes it to settings.probeImage.loader), and the same
  # script for a copy of the image under probeTestRef (probe_image_test.sh runs it against the
  # host's Docker), once with a tag the archive does not carry.
  probeLoadScript = ccci.probeImageLoadScript { inherit (settings.probeImage) archive idFile; };
  probeTest = rec {
    ref = probeTestRef;
    archive = "${root}/probe-test/image.tar.gz";
    idFile = "${root}/probe-test/id";
    script = ccci.probeImageLoadScript { inherit archive idFile ref; };
    wrongRefScript = ccci.probeImageLoadScript {
      inherit archive idFile;
      ref = "${probeTestRef}-absent";
    };
  };
  environment = ccci.environment settings;
  # What pipeline steps see: the units' environment and the bridge's forge settings.
  pipelineEnvironment = ccci.environment settings // ccci.bridgePipelineEnvironment settings;
  envFileText = ccci.envFileText settings;
  services = ccci.services settings;
  timers = ccci.timers settings;
  units = import ./render.nix {
    services = ccci.services settings;
    timers = ccci.timers settings;
  };
  failingAssertions = failing settings;

  variants = {
    dryRun = ccci.services (
      settings
      // {
        janitor = settings.janitor // {
          dryRun = true;
        };
      }
    );
    keepOnFailure = ccci.environment (settings // { keepOnFailure = true; });
    bridgeTokenInStore = failing (
      settings
      // {
        bridge = settings.bridge // {
          droneTokenFile = "/nix/store/0000-drone-token";
        };
      }
    );
    minimal =
      let
        s = settings // {
          proxyUrl = null;
          proxyCaFile = null;
          backupbotRepository = null;
          backupbotPasswordFile = null;
          overlaysDir = null;
          environmentFile = null;
          probeImage = null;
          janitor = settings.janitor // {
            enable = false;
          };
          runner = settings.runner // {
            enable = false;
          };
          bridge = settings.bridge // {
            enable = false;
          };
        };
      in
      {
        services = ccci.services s;
        timers = ccci.timers s;
        environment = ccci.environment s;
        failingAssertions = failing s;
      };
    bad = failing (
      settings
      // {
        stateDir = "/srv/ccci";
        domainSuffix = ".example.org";
        environmentFile = null;
        extraEnvironment.CCCI_X = "it's";
        runner = settings.runner // {
          rpcHost = null;
        };
        bridge = settings.bridge // {
          forgeUrl = null;
        };
      }
    );
  };

  pipelineBinaries = ccci.pipelineBinaries pipeline;
  minimumRepoTimeoutMinutes = ccci.minimumRepoTimeoutMinutes ccci.defaultStepMinutes;
  # What the module and the flake generate with default settings (nix/recipe-ci.drone.yml).
  defaultPipeline = ccci.pipeline { };
  # For the emulated run: a deploy bound of 3 seconds (GNU timeout takes fractional minutes).
  fastPipeline = ccci.pipeline {
    stepMinutes = ccci.defaultStepMinutes // {
      deploy = 5.0e-2;
    };
  };
  droneArch = map ccci.droneArch [
    "x86_64-linux"
    "aarch64-linux"
  ];
}
