# Pure functions from ccci settings to systemd unit definitions and the Drone pipeline.
#
# Only `builtins` is used, so tests/nix/check.sh evaluates this file without nixpkgs. The NixOS
# module (modules/ccci.nix) maps its options onto `settings` and hands the results to
# `systemd.services` and `systemd.timers` unchanged. The pipeline is built from the same names
# and paths, so the units and the pipeline cannot disagree about them.
#
# `settings` (what the module builds from its options):
#   package, abra          ccci package (its bin/ holds the ccci-* binaries); abra executable
#   path                   packages (or directories) whose bin/ goes on the units' PATH
#   stateDir               under /var/lib (systemd's StateDirectory= manages it)
#   domainSuffix, abraServer, allowlistFile, leaseTtl, overlaysDir, proxyUrl, proxyCaFile,
#   keepOnFailure
#   backupbotRepository, backupbotPasswordFile (optional): backup-bot-two's restic repository
#                          and password file on the host, for the abra driver's backup evidence
#   externalNetworks       list of network names (default [ "proxy" ] when absent)
#   extraEnvironment       more non-secret variables for every ccci process
#   environmentFile        path or null: KEY=VALUE secrets, read by systemd, never in the store
#   user, group
#   janitor = { enable, schedule, dryRun }
#   runner = { enable, package, name, capacity, rpcHost, rpcProto, limitRepos }
#   bridge (optional) = { enable, forgeUrl, organisation, repositories, droneUrl,
#            droneRepository, forgeTokenFile, droneTokenFile, interval, lookback, gitBase }
#                          token files are paths outside the store, handed to the units with
#                          systemd's LoadCredential= (never in the environment or the store)
#   probeImage (optional, null: no loader unit) = { archive, idFile, loader, docker }
#                          the docker-archive of ccci's probe image (../probe-image.nix), a
#                          file with its image id, an executable running `probeImageLoadScript`
#                          on them, and the docker package whose CLI it runs
let
  inherit (builtins)
    attrNames
    concatStringsSep
    filter
    foldl'
    map
    stringLength
    substring
    ;

  optionalAttrs = cond: attrs: if cond then attrs else { };
  optional = cond: x: if cond then [ x ] else [ ];
  hasPrefix = prefix: s: substring 0 (stringLength prefix) s == prefix;
  removeNulls = attrs: removeAttrs attrs (filter (n: attrs.${n} == null) (attrNames attrs));
  contains = part: s: builtins.replaceStrings [ part ] [ "" ] s != s;
in
rec {
  # Every binary that the units or the pipeline call.
  binaries = [
    "ccci-deploy"
    "ccci-assert"
    "ccci-upgrade"
    "ccci-backup"
    "ccci-restore"
    "ccci-teardown"
    "ccci-janitor"
    "ccci-report"
    "ccci-bridge"
  ];

  # The image of ccci's throwaway probe containers (serving checks, volume reads and writes):
  # `PROBE_IMAGE` in the Rust source reads the same file, so both name the same image.
  probeImageRef =
    let
      words = builtins.match "[[:space:]]*([^[:space:]]+)[[:space:]]*" (builtins.readFile ../probe-image);
    in
    if words == null then
      throw "ccci: the file probe-image must hold one image name"
    else
      builtins.head words;
  probeImageName = builtins.elemAt (probeImageParts probeImageRef) 0;
  probeImageTag = builtins.elemAt (probeImageParts probeImageRef) 1;
  probeImageParts =
    ref:
    let
      parts = builtins.match "(.+):([^:/]+)" ref;
    in
    if parts == null then throw "ccci: the probe image ${ref} has no :tag" else parts;

  # A sh function printing the image id (`sha256:<hex>`, what `docker image inspect` shows once it
  # is loaded) of the docker-archive `$1`: the digest of the config file its manifest names.
  probeImageIdFunction = ''
    probe_image_id() {
      config=$(tar -xOf "$1" manifest.json | sed -n 's/.*"Config": *"\([^"]*\)".*/\1/p')
      [ -n "$config" ] || { echo "probe_image_id: $1 has no manifest.json naming a config" >&2; return 1; }
      digest=$(tar -xOf "$1" "$config" | sha256sum | cut -d " " -f 1)
      echo "sha256:$digest"
    }
  '';

  # The loader unit's script: loads the docker-archive `archive` unless the image `ref` is already
  # the one whose id `idFile` holds, then checks that `ref` names that image.
  probeImageLoadScript =
    {
      archive,
      idFile,
      ref ? probeImageRef,
    }:
    ''
      set -eu
      want=$(cat '${idFile}')
      have=$(docker image inspect --format '{{.Id}}' '${ref}' 2>/dev/null) || have=
      if [ "$have" = "$want" ]; then
        echo "${ref} is loaded already ($want)"
        exit 0
      fi
      docker load --quiet --input '${archive}'
      have=$(docker image inspect --format '{{.Id}}' '${ref}') || {
        echo "loading ${archive} gave no image ${ref}" >&2
        exit 1
      }
      echo "loaded ${ref} ($have; the archive's id is $want)"
    '';

  # The module installs `envFileText` here; every pipeline step sources it (see `pipeline`).
  envFile = "/etc/ccci/env";

  # Steps hand the run-state to each other through this file in the Drone workspace.
  runStateFile = "$DRONE_WORKSPACE/ccci-run.json";

  # Drone's `platform.arch` for a Nix system.
  droneArch =
    system:
    {
      x86_64-linux = "amd64";
      aarch64-linux = "arm64";
      i686-linux = "386";
      armv7l-linux = "arm";
    }
    .${system} or (throw "ccci: no Drone arch known for system ${system}");

  # The bridge's settings, or a disabled bridge when the settings have none.
  bridgeOf = s: s.bridge or { enable = false; };

  # Where a unit finds the credentials systemd loaded for it (LoadCredential=).
  credentialDir = unit: "/run/credentials/${unit}.service";

  # The forge settings `ccci-bridge verify` and `publish` read in pipeline steps (the forge
  # token is the runner's credential); empty without a bridge.
  bridgePipelineEnvironment =
    s:
    let
      b = bridgeOf s;
    in
    optionalAttrs b.enable {
      CCCI_BRIDGE_FORGE_URL = b.forgeUrl;
      CCCI_BRIDGE_ORG = b.organisation;
      CCCI_BRIDGE_FORGE_TOKEN_FILE = "${credentialDir "ccci-drone-runner"}/forge-token";
    }
    // optionalAttrs (b.enable && (b.gitBase or null) != null) { CCCI_BRIDGE_GIT_BASE = b.gitBase; };

  # `ccci-bridge tick`'s own settings; the tokens are its credentials.
  bridgeEnvironment =
    s:
    let
      b = bridgeOf s;
    in
    {
      CCCI_BRIDGE_FORGE_URL = b.forgeUrl;
      CCCI_BRIDGE_FORGE_TOKEN_FILE = "${credentialDir "ccci-bridge"}/forge-token";
      CCCI_BRIDGE_ORG = b.organisation;
      CCCI_BRIDGE_REPOS = concatStringsSep "," b.repositories;
      CCCI_BRIDGE_DRONE_URL = b.droneUrl;
      CCCI_BRIDGE_DRONE_TOKEN_FILE = "${credentialDir "ccci-bridge"}/drone-token";
      CCCI_BRIDGE_DRONE_REPO = b.droneRepository;
      CCCI_BRIDGE_LOOKBACK = b.lookback;
    };

  # systemd's StateDirectory= takes a name relative to /var/lib.
  stateDirectoryName =
    stateDir:
    let
      prefix = stringLength "/var/lib/";
    in
    substring prefix (stringLength stateDir - prefix) stateDir;

  # The CCCI_* environment of every ccci process on the host: units and pipeline steps alike.
  environment =
    s:
    removeNulls {
      CCCI_STATE_DIR = s.stateDir;
      CCCI_DOMAIN_SUFFIX = s.domainSuffix;
      CCCI_ABRA_SERVER = s.abraServer;
      CCCI_ABRA = s.abra;
      CCCI_ALLOWLIST = s.allowlistFile;
      CCCI_LEASE_TTL = toString s.leaseTtl;
      CCCI_OVERLAYS_DIR = s.overlaysDir;
      CCCI_PROXY_URL = s.proxyUrl;
      CCCI_PROXY_CA_FILE = s.proxyCaFile or null;
      CCCI_BACKUPBOT_REPOSITORY = s.backupbotRepository or null;
      CCCI_BACKUPBOT_PASSWORD_FILE = s.backupbotPasswordFile or null;
      CCCI_KEEP_ON_FAILURE = if s.keepOnFailure then "1" else null;
      CCCI_EXTERNAL_NETWORKS = concatStringsSep "," (s.externalNetworks or [ "proxy" ]);
    }
    // s.extraEnvironment;

  # `environment` as a file of `export KEY='value'` lines, for pipeline steps and for operators
  # who run the binaries by hand. Values are single-quoted; `assertions` rejects values that
  # single quotes cannot carry.
  envFileText =
    s:
    let
      env = environment s // bridgePipelineEnvironment s;
    in
    concatStringsSep "" (map (k: "export ${k}='${env.${k}}'\n") (attrNames env));

  # Checks the module turns into NixOS `assertions`.
  assertions =
    s:
    let
      env = environment s;
    in
    [
      {
        assertion = hasPrefix "/var/lib/" s.stateDir && stateDirectoryName s.stateDir != "";
        message = "services.ccci.stateDir must be below /var/lib (systemd's StateDirectory= manages it), not ${s.stateDir}";
      }
      {
        assertion = s.domainSuffix != "" && !(hasPrefix "." s.domainSuffix);
        message = "services.ccci.domainSuffix must be a domain like ci.example.org, without a leading dot";
      }
      {
        assertion = !s.runner.enable || s.environmentFile != null;
        message = "services.ccci.runner needs services.ccci.environmentFile: it must set DRONE_RPC_SECRET";
      }
      {
        assertion = !s.runner.enable || s.runner.rpcHost != null;
        message = "services.ccci.runner.rpcHost must name the Drone server, e.g. drone.example.org";
      }
      {
        assertion =
          let
            b = bridgeOf s;
          in
          !b.enable
          || (
            b.forgeUrl != null
            && b.organisation != null
            && b.repositories != [ ]
            && b.droneUrl != null
            && b.droneRepository != null
            && b.forgeTokenFile != null
            && b.droneTokenFile != null
          );
        message = "services.ccci.bridge needs forgeUrl, organisation, repositories, droneUrl, droneRepository, forgeTokenFile and droneTokenFile";
      }
      {
        assertion =
          let
            b = bridgeOf s;
          in
          !b.enable
          ||
            !(hasPrefix "/nix/store/" (toString b.forgeTokenFile))
            && !(hasPrefix "/nix/store/" (toString b.droneTokenFile));
        message = "services.ccci.bridge token files must be paths outside the Nix store (strings), read by systemd at start";
      }
    ]
    ++ map (k: {
      assertion =
        !builtins.any (c: contains c env.${k}) [
          "'"
          "\n"
          "\\"
        ];
      message = "ccci: the value of ${k} must not contain a single quote, backslash or newline";
    }) (attrNames env);

  # [Service] keys shared by every ccci unit. The ccci user reaches Docker through the docker
  # group, which is root-equivalent: the hardening below limits accidents, it is no sandbox.
  serviceBase =
    s:
    {
      User = s.user;
      Group = s.group;
      SupplementaryGroups = [ "docker" ];
      StateDirectory = stateDirectoryName s.stateDir;
      StateDirectoryMode = "0750";
      UMask = "0027";
      NoNewPrivileges = true;
      PrivateTmp = true;
      PrivateDevices = true;
      ProtectSystem = "strict";
      ProtectHome = true;
      ProtectHostname = true;
      ProtectClock = true;
      ProtectKernelTunables = true;
      ProtectKernelModules = true;
      ProtectKernelLogs = true;
      ProtectControlGroups = true;
      RestrictNamespaces = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      LockPersonality = true;
      RemoveIPC = true;
      CapabilityBoundingSet = "";
      SystemCallArchitectures = "native";
      SystemCallFilter = [ "@system-service" ];
      # A filtered call fails instead of killing a teardown half-way.
      SystemCallErrorNumber = "EPERM";
      # glibc's resolver asks netlink for the host's addresses.
      RestrictAddressFamilies = [
        "AF_UNIX"
        "AF_INET"
        "AF_INET6"
        "AF_NETLINK"
      ];
    }
    // optionalAttrs (s.environmentFile != null) { EnvironmentFile = s.environmentFile; };

  # A one-shot ccci job that acts on Docker; `restartIfChanged = false` so that a
  # nixos-rebuild never kills a reap half-way.
  oneshot =
    s:
    {
      description,
      exec,
      timeoutMinutes,
    }:
    {
      inherit description;
      after = [ "docker.service" ];
      requires = [ "docker.service" ];
      inherit (s) path;
      environment = environment s;
      restartIfChanged = false;
      serviceConfig = serviceBase s // {
        Type = "oneshot";
        ExecStart = exec;
        TimeoutStartSec = "${toString timeoutMinutes}min";
      };
    };

  bin = s: name: "${s.package}/bin/${name}";

  probeImageUnit = "ccci-probe-image.service";
  hasProbeImage = s: (s.probeImage or null) != null;

  # Loads the probe image into Docker at boot, before the runner, and again when Docker restarts
  # (Requires= passes the restart on) or a rebuild changes the image. It only talks to the Docker
  # socket: no network, no secrets, no state directory.
  probeImageServices =
    s:
    optionalAttrs (hasProbeImage s) {
      ccci-probe-image = {
        description = "Load ccci's probe image ${probeImageRef} into Docker";
        wantedBy = [ "multi-user.target" ];
        after = [ "docker.service" ];
        requires = [ "docker.service" ];
        path = [ s.probeImage.docker ];
        serviceConfig =
          removeAttrs (serviceBase s) [
            "EnvironmentFile"
            "StateDirectory"
            "StateDirectoryMode"
          ]
          // {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = s.probeImage.loader;
            TimeoutStartSec = "5min";
            PrivateNetwork = true;
            IPAddressDeny = "any";
            RestrictAddressFamilies = [ "AF_UNIX" ];
          };
      };
    };

  # systemd.services: name -> NixOS service definition.
  services =
    s:
    {
      ccci-janitor = oneshot s {
        description = "ccci janitor: reap runs whose lease expired and orphaned ccci stacks";
        exec = concatStringsSep " " ([ (bin s "ccci-janitor") ] ++ optional s.janitor.dryRun "--dry-run");
        timeoutMinutes = 30;
      };
      # One instance per run: `systemctl start ccci-teardown@<run-id>`. %i keeps the id verbatim
      # (%I would turn its dashes into slashes).
      "ccci-teardown@" = oneshot s {
        description = "ccci teardown of run %i";
        exec = "${bin s "ccci-teardown"} --run %i";
        timeoutMinutes = 20;
      };
    }
    // probeImageServices s
    // bridgeServices s
    // optionalAttrs s.runner.enable {
      ccci-drone-runner = {
        description = "Drone exec runner for ccci recipe pipelines";
        wantedBy = [ "multi-user.target" ];
        # The probe image is loaded before the first build; a failed load does not keep the
        # runner down (the checks that need the image say which image is missing).
        after = [
          "network-online.target"
          "docker.service"
        ]
        ++ optional (hasProbeImage s) probeImageUnit;
        wants = [ "network-online.target" ] ++ optional (hasProbeImage s) probeImageUnit;
        requires = [ "docker.service" ];
        # The exec runner hands only PATH and USER of its own environment to steps, so this
        # PATH is how steps find the ccci binaries, abra, docker, git, restic and timeout. The CCCI_*
        # variables reach steps through `envFile` instead.
        inherit (s) path;
        environment = removeNulls {
          DRONE_RPC_HOST = s.runner.rpcHost;
          DRONE_RPC_PROTO = s.runner.rpcProto;
          DRONE_RUNNER_CAPACITY = toString s.runner.capacity;
          DRONE_RUNNER_NAME = s.runner.name;
          DRONE_LIMIT_REPOS =
            if s.runner.limitRepos == [ ] then null else concatStringsSep "," s.runner.limitRepos;
        };
        serviceConfig = serviceBase s // {
          # The forge token of `ccci-bridge verify` and `publish` in bridge builds.
          LoadCredential = optional (bridgeOf s).enable "forge-token:${toString (bridgeOf s).forgeTokenFile}";
          ExecStart = "${s.runner.package}/bin/drone-runner-exec daemon";
          WorkingDirectory = s.stateDir;
          Restart = "on-failure";
          RestartSec = "5s";
          # Stopping the runner kills every build process it started, orphans included.
          KillMode = "control-group";
          # Checks run in a PID namespace of their own (with a user namespace, as ccci is not
          # root), so that nothing a check starts outlives it; every other namespace stays denied.
          RestrictNamespaces = "user pid";
        };
      };
    };

  # The bridge's one tick: it talks to the forge and Drone only, so it runs without the docker
  # group and with the same hardening as the other units otherwise.
  bridgeServices =
    s:
    let
      b = bridgeOf s;
    in
    optionalAttrs b.enable {
      ccci-bridge = {
        description = "ccci bridge: one pass over !testme comments on enrolled recipe pull requests";
        after = [ "network-online.target" ];
        wants = [ "network-online.target" ];
        inherit (s) path;
        environment = environment s // bridgeEnvironment s;
        restartIfChanged = false;
        serviceConfig = serviceBase s // {
          Type = "oneshot";
          ExecStart = "${bin s "ccci-bridge"} tick";
          TimeoutStartSec = "10min";
          SupplementaryGroups = [ ];
          LoadCredential = [
            "forge-token:${toString b.forgeTokenFile}"
            "drone-token:${toString b.droneTokenFile}"
          ];
        };
      };
    };

  # systemd.timers: name -> NixOS timer definition.
  timers =
    s:
    optionalAttrs (bridgeOf s).enable {
      ccci-bridge = {
        description = "Run the ccci bridge every ${(bridgeOf s).interval}";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnBootSec = "1min";
          OnUnitActiveSec = (bridgeOf s).interval;
          AccuracySec = "5s";
        };
      };
    }
    // optionalAttrs s.janitor.enable {
      ccci-janitor = {
        description = "Run the ccci janitor on a schedule";
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = s.janitor.schedule;
          Persistent = true;
          AccuracySec = "30s";
        };
      };
    };

  # Upper bounds (minutes) of each pipeline step, enforced with coreutils `timeout`.
  defaultStepMinutes = {
    deploy = 20;
    assert-install = 5;
    upgrade = 15;
    assert-upgrade = 5;
    backup = 15;
    assert-backup = 5;
    restore = 15;
    assert-restore = 5;
    assert-custom = 10;
    teardown = 10;
    report = 1;
    verify = 2;
    publish = 2;
  };

  # Grace between timeout's SIGTERM and its SIGKILL.
  killAfterSeconds = 60;

  # The Drone repository timeout must exceed every step bound added up: Drone's own timeout
  # cancels the build, and a cancelled build runs no teardown step.
  minimumRepoTimeoutMinutes =
    stepMinutes:
    let
      steps = attrNames stepMinutes;
      total = foldl' (acc: n: acc + stepMinutes.${n}) 0 steps;
      killMinutes = (builtins.length steps * killAfterSeconds + 59) / 60;
    in
    total + killMinutes + 5;

  # Drone substitutes ${VAR} in the whole file (build parameters included) before the shell
  # runs, so a parameter could inject shell code. `$$` is its escape for `$`: every `$` in a
  # command reaches the shell untouched, and parameters are read only as quoted variables.
  escapeForDrone = builtins.replaceStrings [ "$" ] [ "$$" ];

  # Where `ccci-bridge verify` leaves why a bridge build must not test anything.
  refusalFile = "$DRONE_WORKSPACE/ccci-refusal";

  # The recipe CI pipeline (exec runner). Build parameters: RECIPE (git URL of the recipe),
  # REF (commit or branch under test), PR (pull request number, shown in the log), and
  # optionally RECIPE_NAME. A build `ccci-bridge` starts has instead CCCI_REQUEST_ID,
  # CCCI_RECIPE_REPO, CCCI_PR, CCCI_HEAD_SHA and CCCI_TRIGGER (docs/bridge.md): the recipe is
  # the forge's repository at exactly that commit, `verify` runs first and `publish` last.
  pipeline =
    {
      name ? "recipe-ci",
      concurrency ? 1,
      arch ? "amd64",
      stepMinutes ? defaultStepMinutes,
    }:
    let
      state = ''"${runStateFile}"'';
      refusal = ''"${refusalFile}"'';
      # The bridge's build parameters, quoted, for `ccci-bridge verify` and `publish`.
      bridgeRun = ''--request "$CCCI_REQUEST_ID" --recipe-repo "$CCCI_RECIPE_REPO" --pr "$CCCI_PR" --sha "$CCCI_HEAD_SHA" --trigger "$CCCI_TRIGGER"'';
      notBridge = ''if [ -z "''${CCCI_REQUEST_ID:-}" ]; then echo "ccci: not a build the bridge asked for: nothing to do"; exit 0; fi'';
      bounded =
        step: command:
        "timeout --kill-after=${toString killAfterSeconds}s ${toString stepMinutes.${step}}m ${command}";
      # Every step runs whatever happened before it: ccci records each op's result in the
      # run-state and a stage with nothing to act on says so. Ops may fail without failing the
      # build (`failure: ignore`); teardown and report may not, and the report's exit status
      # (from the recorded results) decides the build.
      mkStep =
        {
          name,
          commands,
          mayFail,
        }:
        {
          inherit name;
          commands = map escapeForDrone ([ ". ${envFile}" ] ++ commands);
          when.status = [
            "success"
            "failure"
          ];
        }
        // optionalAttrs mayFail { failure = "ignore"; };
      op =
        name: command:
        mkStep {
          inherit name;
          commands = [ (bounded name "${command} --state ${state}") ];
          mayFail = true;
        };
    in
    {
      kind = "pipeline";
      type = "exec";
      inherit name;
      platform = {
        os = "linux";
        inherit arch;
      };
      # One swarm node: builds queue on the server instead of competing for it.
      concurrency.limit = concurrency;
      trigger.event = [ "custom" ];
      # ccci-deploy fetches the recipe itself; the repository holding this file is not needed.
      clone.disable = true;
      steps = [
        (mkStep {
          name = "verify";
          commands = [
            notBridge
            "rm -f ${refusal}"
            (bounded "verify" ''ccci-bridge verify ${bridgeRun} --recipe-url "''${CCCI_BRIDGE_GIT_BASE:-$CCCI_BRIDGE_FORGE_URL}/$CCCI_RECIPE_REPO.git" --refusal ${refusal}'')
          ];
          mayFail = false;
        })
        (mkStep {
          name = "deploy";
          commands = [
            # A bridge build tests the forge's repository at exactly the requested commit, and
            # nothing when `verify` refused it.
            ''if [ -n "''${CCCI_REQUEST_ID:-}" ]; then if [ -e ${refusal} ]; then echo "ccci: not tested: $(cat ${refusal})"; exit 1; fi; export RECIPE="''${CCCI_BRIDGE_GIT_BASE:-$CCCI_BRIDGE_FORGE_URL}/$CCCI_RECIPE_REPO.git"; REF=$CCCI_HEAD_SHA; PR=$CCCI_PR; fi''
            '': "''${RECIPE:?set the build parameter RECIPE to the git URL of the recipe}"''
            '': "''${REF:?set the build parameter REF to the commit or branch under test}"''
            # RECIPE may carry a token (https://user:token@host/...): everything up to its last @
            # is hidden, as ccci itself shows it.
            ''shown=$RECIPE; case $shown in *@*) case $shown in *://*) shown="''${shown%%://*}://***@''${shown##*@}" ;; *) shown="***@''${shown##*@}" ;; esac ;; esac''
            ''echo "ccci: testing $shown at $REF''${PR:+ (pull request $PR)}"''
            # --recipe-env: a URL with a token stays out of ccci-deploy's argv (which ps shows).
            ''set -- --driver abra --recipe-env RECIPE --ref "$REF" --state ${state}''
            ''if [ -n "''${RECIPE_NAME:-}" ]; then set -- "$@" --recipe-name "$RECIPE_NAME"; fi''
            (bounded "deploy" ''ccci-deploy "$@"'')
          ];
          mayFail = true;
        })
        (op "assert-install" "ccci-assert install")
        (op "upgrade" "ccci-upgrade")
        (op "assert-upgrade" "ccci-assert upgrade")
        (op "backup" "ccci-backup")
        (op "assert-backup" "ccci-assert backup")
        (op "restore" "ccci-restore")
        (op "assert-restore" "ccci-assert restore")
        (op "assert-custom" "ccci-assert custom")
        (mkStep {
          name = "teardown";
          commands = [
            ''if [ ! -e ${state} ]; then echo "ccci: no run-state file: deploy started no run, so there is nothing to tear down"; exit 0; fi''
            (bounded "teardown" "ccci-teardown --state ${state}")
          ];
          mayFail = false;
        })
        (mkStep {
          name = "report";
          commands = [ (bounded "report" "ccci-report --state ${state} --format text") ];
          mayFail = false;
        })
        (mkStep {
          name = "publish";
          commands = [
            notBridge
            (bounded "publish" ''ccci-bridge publish ${bridgeRun} --state ${state} --refusal ${refusal} --link "$DRONE_BUILD_LINK" --build "$DRONE_BUILD_NUMBER"'')
          ];
          mayFail = false;
        })
      ];
    };

  # The binaries a pipeline's commands call, for checks that they exist.
  pipelineBinaries =
    p:
    let
      words = c: filter builtins.isString (builtins.split "[ ;]" c);
    in
    filter (
      b: builtins.any (step: builtins.any (c: builtins.elem b (words c)) step.commands) p.steps
    ) binaries;
}
