# NixOS module for ccci: the janitor (service + timer), the per-run teardown template, the
# loader of ccci's probe image and the Drone exec runner that runs the recipe CI pipeline.
#
# The module only maps options onto ../lib.nix, whose pure functions build the units and the
# pipeline; tests/nix/check.sh evaluates those functions without nixpkgs.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.ccci;
  ccciLib = import ../lib.nix;

  inherit (lib)
    literalExpression
    mkEnableOption
    mkIf
    mkOption
    mkPackageOption
    types
    ;

  allowlistFile =
    if builtins.isList cfg.allowlist then
      pkgs.writeText "ccci-allowlist" (lib.concatLines cfg.allowlist)
    else
      cfg.allowlist;

  settings = {
    inherit (cfg)
      package
      stateDir
      domainSuffix
      abraServer
      leaseTtl
      overlaysDir
      proxyUrl
      proxyCaFile
      backupbotRepository
      backupbotPasswordFile
      keepOnFailure
      externalNetworks
      extraEnvironment
      environmentFile
      ;
    abra = lib.getExe' cfg.abraPackage "abra";
    allowlistFile = "${allowlistFile}";
    path = [
      cfg.package
      cfg.abraPackage
      config.virtualisation.docker.package
      pkgs.git
      # The stack driver's backup engine and the reader of every backup's evidence.
      pkgs.restic
      pkgs.coreutils
    ];
    user = "ccci";
    group = "ccci";
    probeImage = {
      archive = "${cfg.probeImage}/image.tar.gz";
      idFile = "${cfg.probeImage}/id";
      loader = pkgs.writeShellScript "ccci-probe-image-load" (
        ccciLib.probeImageLoadScript {
          archive = "${cfg.probeImage}/image.tar.gz";
          idFile = "${cfg.probeImage}/id";
        }
      );
      docker = config.virtualisation.docker.package;
    };
    janitor = {
      inherit (cfg.janitor) enable schedule dryRun;
    };
    runner = {
      inherit (cfg.runner)
        enable
        package
        name
        capacity
        rpcHost
        rpcProto
        limitRepos
        ;
    };
    bridge = {
      inherit (cfg.bridge)
        enable
        forgeUrl
        organisation
        repositories
        droneUrl
        droneRepository
        forgeTokenFile
        droneTokenFile
        interval
        lookback
        gitBase
        ;
    };
  };
in
{
  options.services.ccci = {
    enable = mkEnableOption "ccci, the Co-op Cloud recipe CI harness, with its janitor and teardown units";

    package = mkPackageOption pkgs "ccci" { };

    abraPackage = mkOption {
      type = types.package;
      example = literalExpression "pkgs.abra";
      description = ''
        The abra package. Its `bin/abra` is what ccci runs (`CCCI_ABRA`) and what the units and
        pipeline steps find on their PATH. Required: pin the abra version you trust.
      '';
    };

    stateDir = mkOption {
      type = types.path;
      default = "/var/lib/ccci";
      description = ''
        Run registry and per-run workspaces (`CCCI_STATE_DIR`). Must be below /var/lib:
        systemd creates it with `StateDirectory=`, owned by the ccci user.
      '';
    };

    domainSuffix = mkOption {
      type = types.str;
      example = "ci.example.org";
      description = ''
        Domain below which each run gets `<recipe[:4]>-<6 hex>.<domainSuffix>`
        (`CCCI_DOMAIN_SUFFIX`). A wildcard DNS record for it should point at this host.
      '';
    };

    abraServer = mkOption {
      type = types.str;
      default = "default";
      description = "Name of the abra server the apps are deployed to (`CCCI_ABRA_SERVER`); `default` is the local Docker daemon.";
    };

    allowlist = mkOption {
      type = types.either (types.listOf types.str) types.path;
      default = [ ];
      example = [ "git.coopcloud.tech/coop-cloud/custom-html" ];
      description = ''
        Recipe repositories allowed to run their own, PR-authored code (`tests/`,
        `install_steps.sh`) on this host: a list of repository identities (`host/owner/name`, a
        https:// or ssh:// URL, or a local path; never a bare recipe name), written to a file one
        per line, or the path of such a file (`CCCI_ALLOWLIST`). Empty denies every recipe; cc-ci's
        own overlays always run. See docs/enrolling-a-recipe.md.
      '';
    };

    probeImage = mkOption {
      type = types.package;
      readOnly = true;
      default = pkgs.callPackage ../probe-image.nix { };
      defaultText = literalExpression "the probe image from nix/probe-image.nix";
      description = ''
        ccci's probe image (`${ccciLib.probeImageRef}`, a static busybox) as a docker-archive
        (`image.tar.gz`) with its image id (`id`). The probe containers of serving checks and of
        every backup and restore volume access run it, never pulled: `ccci-probe-image.service`
        loads it into Docker at boot, before the runner, unless Docker has that image already.
      '';
    };

    dockerUserNamespaceRemap = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Run Docker with user-namespace remapping (`userns-remap`): root in a container is an
        unprivileged uid on the host (from a `dockremap` user's subordinate range), so a container
        that escapes its isolation holds no host privilege. Sets
        {option}`virtualisation.docker.daemon.settings` `userns-remap = "dockremap"` and declares
        that user with its subordinate uid and gid ranges. It moves Docker's data to
        `/var/lib/docker/<uid>.<gid>/`: run `docker swarm init` again after switching
        (`ccci-probe-image.service` loads the probe image again when Docker restarts). Breaks
        recipes that need the host: bind mounts of host paths and the Docker socket (traefik,
        backup-bot-two), since swarm services cannot opt out with `--userns=host`. See
        docs/nixos.md.
      '';
    };

    leaseTtl = mkOption {
      type = types.either types.ints.positive (types.strMatching "[0-9]+[sm]?");
      default = "10m";
      example = "15m";
      description = ''
        How long a run's lease lives without renewal (`CCCI_LEASE_TTL`): seconds, or a number
        with `s` or `m`, from 1 second to 24 hours. The janitor reaps a run whose lease expired.
      '';
    };

    overlaysDir = mkOption {
      type = types.nullOr types.path;
      default = "${cfg.package}/share/ccci/overlays";
      defaultText = literalExpression ''"''${config.services.ccci.package}/share/ccci/overlays"'';
      description = "Directory of cc-ci-maintained per-recipe overlays (`CCCI_OVERLAYS_DIR`); null leaves it unset.";
    };

    proxyUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://127.0.0.1:443";
      description = ''
        The front door (`CCCI_PROXY_URL`): the HTTPS address of the proxy (traefik) through which
        visitors reach the apps. Serving checks connect there with the run's domain as SNI and
        `Host` and verify the certificate for the domain.
      '';
    };

    proxyCaFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/etc/ccci/proxy-ca.pem";
      description = ''
        PEM file of the CA (or the wildcard certificate) the front door's certificates are checked
        against (`CCCI_PROXY_CA_FILE`); null checks them against the system's roots.
      '';
    };

    backupbotRepository = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/var/lib/docker/volumes/backup-bot-two_example_org_backups/_data/restic";
      description = ''
        The restic repository backup-bot-two backs up into, as this host sees it
        (`CCCI_BACKUPBOT_REPOSITORY`): the abra driver's backup and restore tiers read their
        evidence from it with the host's restic. The ccci user must be able to read it (Docker's
        volume directories are root's: grant it, e.g. with an ACL). Null: those tiers are an
        environment error with the abra driver.
      '';
    };

    backupbotPasswordFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/keys/backupbot-restic-password";
      description = ''
        A file holding that repository's password (backup-bot-two's `restic_password` secret;
        `CCCI_BACKUPBOT_PASSWORD_FILE`), readable by the ccci user. A path as a string so that
        the secret never enters the Nix store; restic reads it, ccci never does.
      '';
    };

    externalNetworks = mkOption {
      type = types.listOf types.str;
      default = [ "proxy" ];
      description = ''
        External networks that a recipe outside the allowlist may join (`CCCI_EXTERNAL_NETWORKS`).
        Joining any other, or `host`, is host access and fails the deploy.
      '';
    };

    keepOnFailure = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Leave a failed run's deployment in place for debugging (`CCCI_KEEP_ON_FAILURE=1`).
        The janitor still reaps it when its lease expires.
      '';
    };

    extraEnvironment = mkOption {
      type = types.attrsOf types.str;
      default = { };
      example = {
        CCCI_SKIP_GENERIC_CUSTOM = "1";
      };
      description = ''
        More environment for every ccci process (units and pipeline steps). It ends up in the
        world-readable Nix store: never put secrets here, use {option}`environmentFile`.
      '';
    };

    environmentFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/run/secrets/ccci.env";
      description = ''
        File of `KEY=VALUE` lines read by systemd (as root, before dropping privileges) for the
        ccci units and the Drone runner; see {manpage}`systemd.exec(5)` `EnvironmentFile=`.
        This is where secrets go, above all `DRONE_RPC_SECRET`; keep it outside the Nix store
        and readable by root only. Pipeline steps do not see it: the exec runner passes only
        PATH and USER of its own environment to steps.
      '';
    };

    janitor = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Start `ccci-janitor.service` on {option}`services.ccci.janitor.schedule`.";
      };

      schedule = mkOption {
        type = types.str;
        default = "*:0/5";
        example = "*:0/2";
        description = ''
          When the janitor runs, as a {manpage}`systemd.time(7)` calendar event (`OnCalendar=`).
          A run whose lease expired is reaped within one tick.
        '';
      };

      dryRun = mkOption {
        type = types.bool;
        default = false;
        description = "Only report what the janitor would reap (`ccci-janitor --dry-run`).";
      };
    };

    runner = {
      enable = mkEnableOption "the Drone exec runner that runs the ccci recipe pipeline";

      package = mkPackageOption pkgs "drone-runner-exec" { };

      name = mkOption {
        type = types.str;
        default = config.networking.hostName;
        defaultText = literalExpression "config.networking.hostName";
        description = "Runner name shown in Drone (`DRONE_RUNNER_NAME`).";
      };

      capacity = mkOption {
        type = types.ints.positive;
        default = 1;
        description = ''
          Pipelines this runner runs at once (`DRONE_RUNNER_CAPACITY`), also the pipeline's
          `concurrency.limit`. Runs never share names, but they share one swarm node.
        '';
      };

      rpcHost = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "drone.example.org";
        description = "Host (and port) of the Drone server (`DRONE_RPC_HOST`). The RPC secret goes in {option}`services.ccci.environmentFile`.";
      };

      rpcProto = mkOption {
        type = types.enum [
          "http"
          "https"
        ];
        default = "https";
        description = "Protocol to reach the Drone server (`DRONE_RPC_PROTO`).";
      };

      limitRepos = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "coop-cloud/ccci-pipeline" ];
        description = ''
          Repositories (`owner/name`, globs allowed) whose pipelines this runner accepts
          (`DRONE_LIMIT_REPOS`). Steps run on the host with Docker access, so set this.
        '';
      };

      pipelineFile = mkOption {
        type = types.path;
        readOnly = true;
        default = pkgs.writeText "ccci-recipe-ci.drone.yml" (
          builtins.toJSON (
            ccciLib.pipeline {
              concurrency = cfg.runner.capacity;
              arch = ccciLib.droneArch pkgs.stdenv.hostPlatform.system;
            }
          )
        );
        defaultText = literalExpression "the pipeline from nix/lib.nix for this host";
        description = ''
          The recipe CI pipeline for this host, generated from the same data as the units.
          Commit its content as the Drone configuration file of the repository you trigger
          builds on.
        '';
      };
    };
  };

  options.services.ccci.bridge = {
    enable = mkEnableOption "`ccci-bridge`: `!testme` on enrolled recipe pull requests starts one Drone build (docs/bridge.md)";

    forgeUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://git.coopcloud.tech";
      description = "The forge (Gitea or Forgejo) the bot polls (`CCCI_BRIDGE_FORGE_URL`).";
    };

    organisation = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "coop-cloud";
      description = "Members of this organisation may ask for a test run (`CCCI_BRIDGE_ORG`). The bot must be a member.";
    };

    repositories = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "coop-cloud/custom-html" ];
      description = "The enrolled recipe repositories, `owner/name` (`CCCI_BRIDGE_REPOS`).";
    };

    droneUrl = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://drone.example.org";
      description = "The Drone server (`CCCI_BRIDGE_DRONE_URL`).";
    };

    droneRepository = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "coop-cloud/recipe-ci";
      description = "The Drone repository whose pipeline is {option}`services.ccci.runner.pipelineFile` (`CCCI_BRIDGE_DRONE_REPO`).";
    };

    forgeTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/ccci-bridge-forge-token";
      description = ''
        File holding the bot's forge token (scopes in docs/bridge.md), outside the Nix store.
        systemd hands it to `ccci-bridge.service` and the runner with `LoadCredential=`.
      '';
    };

    droneTokenFile = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/run/secrets/ccci-bridge-drone-token";
      description = "File holding a Drone token with write access to the repository, outside the Nix store (`LoadCredential=`).";
    };

    interval = mkOption {
      type = types.str;
      default = "1min";
      description = "Time between two ticks (`OnUnitActiveSec=` of `ccci-bridge.timer`).";
    };

    gitBase = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "ssh://git@git.coopcloud.tech:2222";
      description = "Where bridge builds clone `<base>/<owner>/<name>.git` from (`CCCI_BRIDGE_GIT_BASE`); null: {option}`services.ccci.bridge.forgeUrl`.";
    };

    lookback = mkOption {
      type = types.str;
      default = "2h";
      description = "On a cold start, how old a `!testme` may be and still count (`CCCI_BRIDGE_LOOKBACK`).";
    };
  };

  config = mkIf cfg.enable {
    assertions = ccciLib.assertions settings ++ [
      {
        assertion = config.virtualisation.docker.enable;
        message = "services.ccci needs Docker: set virtualisation.docker.enable = true (and run `docker swarm init` once)";
      }
    ];

    users.users.ccci = {
      isSystemUser = true;
      group = "ccci";
      extraGroups = [ "docker" ];
      home = cfg.stateDir;
      description = "ccci recipe CI harness";
    };
    users.groups.ccci = { };

    # User-namespace remapping: container root is a uid of dockremap's subordinate range.
    users.users.dockremap = mkIf cfg.dockerUserNamespaceRemap {
      isSystemUser = true;
      group = "dockremap";
      subUidRanges = [
        {
          startUid = 100000;
          count = 65536;
        }
      ];
      subGidRanges = [
        {
          startGid = 100000;
          count = 65536;
        }
      ];
    };
    users.groups.dockremap = mkIf cfg.dockerUserNamespaceRemap { };
    virtualisation.docker.daemon.settings = mkIf cfg.dockerUserNamespaceRemap {
      userns-remap = "dockremap";
    };

    # The CCCI_* environment for pipeline steps, and for operators running ops by hand.
    environment.etc.${lib.removePrefix "/etc/" ccciLib.envFile}.text = ccciLib.envFileText settings;
    environment.systemPackages = [ cfg.package ];

    systemd.services = ccciLib.services settings;
    systemd.timers = ccciLib.timers settings;
  };
}
