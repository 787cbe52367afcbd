"""Assertions on the JSON that tests/nix/check.sh gets from evaluating nix/lib.nix (eval.nix),
the module (module-eval.nix) and the package (package-eval.nix). Prints one `PASS name` or
`FAIL name: reason` line per check.

usage: assert_eval.py lib EVAL_JSON ROOT SECRET_SENTINEL
       assert_eval.py module MODULE_JSON MODULE_NOSECRET_JSON MODULE_PATHS_JSON MODULE_NODOCKER_JSON
       assert_eval.py flags EVAL_JSON BIN_DIR
       assert_eval.py flake FLAKE_JSON REPO EVAL_JSON
       assert_eval.py package PACKAGE_JSON REPO
       assert_eval.py probe EVAL_JSON MODULE_JSON REPO ROOT
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib

results = []


def check(name, ok, why=""):
    results.append(bool(ok))
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def load(path):
    with open(path) as f:
        return json.load(f)


OPS = ["deploy", "assert-install", "upgrade", "assert-upgrade", "backup", "assert-backup", "restore",
       "assert-restore", "assert-custom"]
STEP_NAMES = ["verify"] + OPS + ["teardown", "report", "publish"]
# engine/resource/exec.go of drone-runner-exec, plus the pipeline keys the server reads.
STEP_KEYS = {"name", "shell", "depends_on", "detach", "environment", "failure", "commands", "when"}
PIPELINE_KEYS = {"kind", "type", "name", "platform", "concurrency", "trigger", "clone", "steps",
                 "workspace", "depends_on", "node"}
ONESHOTS = ["ccci-janitor", "ccci-teardown@"]
# Loads the probe image into Docker: no ccci binary, no state, no secrets.
LOADER = "ccci-probe-image"
LOADER_UNIT = LOADER + ".service"
BRIDGE_ENV = {
    "CCCI_BRIDGE_FORGE_URL": "https://git.example.org", "CCCI_BRIDGE_ORG": "coop-cloud",
    "CCCI_BRIDGE_REPOS": "coop-cloud/custom-html,coop-cloud/gitea",
    "CCCI_BRIDGE_DRONE_URL": "https://drone.example.org",
    "CCCI_BRIDGE_DRONE_REPO": "coop-cloud/recipe-ci", "CCCI_BRIDGE_LOOKBACK": "2h",
    "CCCI_BRIDGE_FORGE_TOKEN_FILE": "/run/credentials/ccci-bridge.service/forge-token",
    "CCCI_BRIDGE_DRONE_TOKEN_FILE": "/run/credentials/ccci-bridge.service/drone-token"}
HARDENING = {"User": "ccci", "Group": "ccci", "SupplementaryGroups": ["docker"],
             "StateDirectory": "ccci", "NoNewPrivileges": True, "PrivateTmp": True,
             "ProtectSystem": "strict", "ProtectHome": True}


def lib_checks(ev, root, sentinel):
    svc, tim, env = ev["services"], ev["timers"], ev["environment"]
    check("lib: good settings pass every assertion", ev["failingAssertions"] == [],
          ev["failingAssertions"])
    bad = ev["variants"]["bad"]
    wanted = ["stateDir must be below /var/lib", "domainSuffix must be a domain",
              "needs services.ccci.environmentFile", "rpcHost must name the Drone server",
              "CCCI_X must not contain a single quote",
              "services.ccci.bridge needs forgeUrl"]
    check("lib: bad settings fail the matching assertions",
          len(bad) == len(wanted) and all(any(w in m for m in bad) for w in wanted), bad)

    check("lib: unit names", sorted(svc) == ["ccci-bridge", "ccci-drone-runner", "ccci-janitor",
                                             LOADER, "ccci-teardown@"]
          and sorted(tim) == ["ccci-bridge", "ccci-janitor"], (sorted(svc), sorted(tim)))
    execs = {n: svc[n]["serviceConfig"]["ExecStart"] for n in svc}
    check("lib: ExecStart paths", execs == {
        "ccci-janitor": root + "/pkg/bin/ccci-janitor",
        "ccci-teardown@": root + "/pkg/bin/ccci-teardown --run %i",
        "ccci-bridge": root + "/pkg/bin/ccci-bridge tick",
        LOADER: root + "/probe/load",
        "ccci-drone-runner": root + "/runner/bin/drone-runner-exec daemon"}, execs)
    check("lib: dry-run janitor", ev["variants"]["dryRun"]["ccci-janitor"]["serviceConfig"]
          ["ExecStart"] == root + "/pkg/bin/ccci-janitor --dry-run")
    check("lib: janitor and teardown are oneshots that a rebuild does not restart",
          all(svc[n]["serviceConfig"]["Type"] == "oneshot" and svc[n]["restartIfChanged"] is False
              and svc[n]["serviceConfig"]["TimeoutStartSec"].endswith("min") for n in ONESHOTS))
    b = svc["ccci-bridge"]
    check("lib: the bridge is a oneshot per timer tick, its tokens systemd credentials",
          b["serviceConfig"]["Type"] == "oneshot" and b["restartIfChanged"] is False
          and b["serviceConfig"]["LoadCredential"] == [
              "forge-token:/run/secrets/bridge-forge-token",
              "drone-token:/run/secrets/bridge-drone-token"]
          and b["environment"] == dict(env, **BRIDGE_ENV)
          and tim["ccci-bridge"]["timerConfig"]["OnUnitActiveSec"] == "1min", b)
    check("lib: a bridge token file in the Nix store is refused",
          ev["variants"]["bridgeTokenInStore"] == [
              "services.ccci.bridge token files must be paths outside the Nix store (strings), read by systemd at start"],
          ev["variants"]["bridgeTokenInStore"])
    check("lib: the bridge needs no Docker", b["serviceConfig"]["SupplementaryGroups"] == []
          and "docker.service" not in b.get("requires", []), b["serviceConfig"])
    check("lib: the runner loads the forge token for the pipeline's bridge steps",
          svc["ccci-drone-runner"]["serviceConfig"]["LoadCredential"]
          == ["forge-token:/run/secrets/bridge-forge-token"])
    check("lib: the pipeline's environment adds the forge, the organisation and that token",
          ev["pipelineEnvironment"] == dict(env, **{
              "CCCI_BRIDGE_FORGE_URL": "https://git.example.org", "CCCI_BRIDGE_ORG": "coop-cloud",
              "CCCI_BRIDGE_FORGE_TOKEN_FILE": "/run/credentials/ccci-drone-runner.service/forge-token"}),
          ev["pipelineEnvironment"])
    t = tim["ccci-janitor"]
    check("lib: janitor timer schedule", t["timerConfig"]["OnCalendar"] == "*:0/5"
          and t["timerConfig"]["Persistent"] is True and t["wantedBy"] == ["timers.target"], t)

    expected_env = {
        "CCCI_STATE_DIR": "/var/lib/ccci", "CCCI_DOMAIN_SUFFIX": "ci.example.org",
        "CCCI_ABRA_SERVER": "default", "CCCI_ABRA": root + "/abra/bin/abra",
        "CCCI_ALLOWLIST": root + "/allowlist", "CCCI_LEASE_TTL": "10m",
        "CCCI_OVERLAYS_DIR": root + "/pkg/share/ccci/overlays",
        "CCCI_PROXY_URL": "https://127.0.0.1:443", "CCCI_PROXY_CA_FILE": root + "/proxy-ca.pem",
        "CCCI_BACKUPBOT_REPOSITORY": "/var/lib/docker/volumes/bb_backups/_data/restic",
        "CCCI_BACKUPBOT_PASSWORD_FILE": "/run/keys/backupbot-password",
        "CCCI_EXTERNAL_NETWORKS": "proxy,monitoring"}
    check("lib: CCCI_* environment", env == expected_env, env)
    check("lib: the oneshots get exactly that environment",
          all(svc[n]["environment"] == expected_env for n in ONESHOTS))
    check("lib: keepOnFailure sets CCCI_KEEP_ON_FAILURE=1",
          ev["variants"]["keepOnFailure"].get("CCCI_KEEP_ON_FAILURE") == "1")
    m = ev["variants"]["minimal"]
    check("lib: unset options stay unset; no runner, no timer, no env file",
          m["failingAssertions"] == [] and m["timers"] == {}
          and sorted(m["services"]) == ["ccci-janitor", "ccci-teardown@"]
          and "CCCI_PROXY_URL" not in m["environment"]
          and "CCCI_PROXY_CA_FILE" not in m["environment"]
          and "CCCI_BACKUPBOT_REPOSITORY" not in m["environment"]
          and "CCCI_BACKUPBOT_PASSWORD_FILE" not in m["environment"]
          and "CCCI_OVERLAYS_DIR" not in m["environment"]
          and all("EnvironmentFile" not in s["serviceConfig"] for s in m["services"].values()), m)

    with tempfile.NamedTemporaryFile("w", suffix=".env", delete=False) as f:
        f.write(ev["envFileText"])
    out = subprocess.run(["sh", "-c", '. "$1" && env -0', "sh", f.name], env={},
                         capture_output=True, text=True)
    os.unlink(f.name)
    sourced = dict(kv.split("=", 1) for kv in out.stdout.split("\0") if kv.startswith("CCCI_"))
    check("lib: the env file, sourced by sh, exports the same environment",
          sourced == ev["pipelineEnvironment"], sourced)

    runner = svc["ccci-drone-runner"]
    check("lib: Drone runner connection", runner["environment"] == {
        "DRONE_RPC_HOST": "drone.example.org", "DRONE_RPC_PROTO": "https",
        "DRONE_RUNNER_CAPACITY": "2", "DRONE_RUNNER_NAME": "ci-host",
        "DRONE_LIMIT_REPOS": "coop-cloud/recipe-ci"}, runner["environment"])
    check("lib: the runner's PATH has ccci, abra and docker",
          runner["path"] == [root + "/pkg", root + "/abra", root + "/docker"], runner["path"])
    check("lib: the runner starts with the system and stops its builds with it",
          runner["wantedBy"] == ["multi-user.target"]
          and runner["serviceConfig"]["KillMode"] == "control-group")
    check("lib: every unit but the probe image loader reads secrets from the environment file",
          all(s["serviceConfig"].get("EnvironmentFile") == root + "/secrets/ccci.env"
              for n, s in svc.items() if n != LOADER)
          and "EnvironmentFile" not in svc[LOADER]["serviceConfig"])
    bad_hardening = {n: {k: s["serviceConfig"].get(k) for k in HARDENING
                         if s["serviceConfig"].get(k) != HARDENING[k]
                         and not (n == "ccci-bridge" and k == "SupplementaryGroups")
                         and not (n == LOADER and k == "StateDirectory")}
                     for n, s in svc.items()}
    check("lib: every unit runs as ccci with the docker group, its state dir and hardening",
          all(v == {} for v in bad_hardening.values()), bad_hardening)

    everything = json.dumps(ev)
    check("lib: no secret value anywhere in the units or the pipeline",
          sentinel not in everything and all(sentinel not in u for u in ev["units"].values()))
    check("lib: DRONE_RPC_SECRET is set by no unit and no pipeline",
          all("DRONE_RPC_SECRET" not in s.get("environment", {}) for s in svc.values())
          and "DRONE_RPC_SECRET" not in json.dumps(ev["pipeline"])
          and not any("DRONE_RPC_SECRET=" in u for u in ev["units"].values()))

    p = ev["pipeline"]
    check("lib: pipeline kind, type, platform, trigger, clone",
          p["kind"] == "pipeline" and p["type"] == "exec" and p["name"] == "recipe-ci"
          and p["platform"] == {"os": "linux", "arch": "amd64"}
          and p["trigger"] == {"event": ["custom"]} and p["clone"] == {"disable": True}, p)
    check("lib: pipeline concurrency limit follows the runner capacity",
          p["concurrency"] == {"limit": 2}, p["concurrency"])
    steps = p["steps"]
    check("lib: pipeline step order", [s["name"] for s in steps] == STEP_NAMES,
          [s["name"] for s in steps])
    check("lib: pipeline and step keys are ones the exec runner knows",
          set(p) <= PIPELINE_KEYS and all(set(s) <= STEP_KEYS for s in steps),
          [sorted(set(s) - STEP_KEYS) for s in steps] + [sorted(set(p) - PIPELINE_KEYS)])
    check("lib: every step runs on success and on failure",
          all(s["when"] == {"status": ["success", "failure"]} for s in steps))
    check("lib: ops may fail; verify, teardown, report and publish may not",
          all(s.get("failure") == "ignore" for s in steps if s["name"] in OPS)
          and all("failure" not in s for s in steps if s["name"] not in OPS))
    binaries = set(ev["binaries"])
    calls = [c for s in steps for c in s["commands"] if binaries & set(c.split())]
    bounds = ev["defaultStepMinutes"]
    check("lib: every ccci call has a time bound",
          calls and all(c.startswith("timeout --kill-after=60s ") for c in calls), calls)
    check("lib: each step's bound is the configured one",
          all(any(c.startswith("timeout --kill-after=60s %sm ccci-" % bounds[s["name"]])
                  for c in s["commands"]) for s in steps), bounds)
    total = sum(bounds.values()) + len(bounds) * ev["killAfterSeconds"] / 60
    check("lib: the documented Drone repository timeout exceeds all step bounds together",
          ev["minimumRepoTimeoutMinutes"] > total, (ev["minimumRepoTimeoutMinutes"], total))
    check("lib: commands hold no backslash (Drone's substitution would eat it)",
          not any("\\" in c for s in steps for c in s["commands"]))
    check("lib: binaries the pipeline calls",
          ev["pipelineBinaries"] == ["ccci-deploy", "ccci-assert", "ccci-upgrade", "ccci-backup",
                                     "ccci-restore", "ccci-teardown", "ccci-report", "ccci-bridge"],
          ev["pipelineBinaries"])
    check("lib: Drone arch per system", ev["droneArch"] == ["amd64", "arm64"], ev["droneArch"])


def module_checks(mod, nosecret, paths, nodocker, remap):
    opts = mod["options"]
    check("module: enabled with a complete configuration, every assertion holds",
          mod["enabled"] and mod["failingAssertions"] == [], mod["failingAssertions"])
    o = opts["services.ccci.abraPackage"]
    check("module: abraPackage is a package option without default",
          o["type"] == "package" and not o["hasDefault"], o)
    check("module: domainSuffix must be set (no default, an example)",
          not opts["services.ccci.domainSuffix"]["hasDefault"]
          and opts["services.ccci.domainSuffix"]["hasExample"])
    check("module: every option has a description",
          all(v["description"] for v in opts.values()),
          [k for k, v in opts.items() if not v["description"]])
    typed = {k: (v["type"], v["typeArgs"]) for k, v in opts.items()}
    check("module: secrets only as a file path",
          typed["services.ccci.environmentFile"] == ("nullOr", ["path"])
          and all(typed[k] == ("nullOr", ["str"]) for k in opts
                  if k.endswith("TokenFile") or k.endswith("PasswordFile"))
          and not any(w in k.lower() for k in opts for w in ("secret", "password", "token")
                      if not (k.endswith("TokenFile") or k.endswith("PasswordFile"))),
          typed["services.ccci.environmentFile"])
    cfg = mod["cfg"]
    check("module: defaults", cfg["stateDir"] == "/var/lib/ccci" and cfg["abraServer"] == "default"
          and cfg["allowlist"] == ["git.coopcloud.tech/coop-cloud/custom-html", "git.coopcloud.tech/coop-cloud/gitea"] and cfg["leaseTtl"] == "10m"
          and cfg["janitor"] == {"enable": True, "schedule": "*:0/5", "dryRun": False}
          and cfg["runner"]["capacity"] == 1 and cfg["runner"]["rpcProto"] == "https"
          and cfg["runner"]["name"] == "ci-host"
          and cfg["overlaysDir"] == "/nix/store/ccci/share/ccci/overlays", cfg)
    s = mod["systemd"]["services"]
    check("module: units use the configured packages",
          s["ccci-janitor"]["serviceConfig"]["ExecStart"] == "/nix/store/ccci/bin/ccci-janitor"
          and s["ccci-teardown@"]["serviceConfig"]["ExecStart"]
          == "/nix/store/ccci/bin/ccci-teardown --run %i"
          and s["ccci-drone-runner"]["serviceConfig"]["ExecStart"]
          == "/nix/store/drone-runner-exec/bin/drone-runner-exec daemon",
          {n: u["serviceConfig"]["ExecStart"] for n, u in s.items()})
    check("module: PATH has ccci, abra, docker, git, restic and coreutils",
          all(u["path"] == ["/nix/store/ccci", "/nix/store/abra", "/nix/store/docker",
                            "/nix/store/git", "/nix/store/restic", "/nix/store/coreutils"]
              for n, u in s.items() if n != LOADER)
          and s[LOADER]["path"] == ["/nix/store/docker"])
    env = s["ccci-janitor"]["environment"]
    check("module: CCCI_ABRA is abra's bin/abra, the allowlist list becomes a file",
          env["CCCI_ABRA"] == "/nix/store/abra/bin/abra"
          and env["CCCI_ALLOWLIST"] == "/nix/store/writeText-ccci-allowlist", env)
    check("module: an allowlist path is used as it is",
          paths["systemd"]["services"]["ccci-janitor"]["environment"]["CCCI_ALLOWLIST"]
          == "/etc/ccci/allowlist")
    etc = mod["environment"]["etc"]
    text = etc.get("ccci/env", {}).get("text", "")
    bridge_env = {"CCCI_BRIDGE_FORGE_URL": "https://git.example.org", "CCCI_BRIDGE_ORG": "coop-cloud",
                  "CCCI_BRIDGE_FORGE_TOKEN_FILE":
                  "/run/credentials/ccci-drone-runner.service/forge-token"}
    check("module: /etc/ccci/env carries the units' environment and the bridge's forge settings",
          sorted(text.splitlines())
          == sorted("export %s='%s'" % kv for kv in dict(env, **bridge_env).items()), text)
    b = s["ccci-bridge"]
    check("module: the bridge unit ticks with its tokens as credentials",
          b["serviceConfig"]["ExecStart"] == "/nix/store/ccci/bin/ccci-bridge tick"
          and b["serviceConfig"]["LoadCredential"] == ["forge-token:/run/secrets/bridge-forge",
                                                        "drone-token:/run/secrets/bridge-drone"]
          and b["environment"]["CCCI_BRIDGE_REPOS"] == "coop-cloud/custom-html"
          and mod["systemd"]["timers"]["ccci-bridge"]["timerConfig"]["OnUnitActiveSec"] == "1min",
          b)
    u = mod["users"]["users"]["ccci"]
    check("module: a ccci system user in the docker group, home in the state dir",
          u["isSystemUser"] and u["group"] == "ccci" and u["extraGroups"] == ["docker"]
          and u["home"] == "/var/lib/ccci" and "ccci" in mod["users"]["groups"], u)
    check("module: janitor timer", mod["systemd"]["timers"]["ccci-janitor"]["timerConfig"]
          ["OnCalendar"] == "*:0/5")
    pipeline = json.loads(mod["pipelineText"])
    check("module: its pipeline file is the lib pipeline for the runner's capacity",
          pipeline["concurrency"] == {"limit": 1} and pipeline["platform"]["arch"] == "amd64"
          and [st["name"] for st in pipeline["steps"]] == STEP_NAMES)
    check("module: a runner without environment file is refused",
          any("needs services.ccci.environmentFile" in m for m in nosecret["failingAssertions"]),
          nosecret["failingAssertions"])
    settings = mod["virtualisation"]["docker"]["daemon"]["settings"]
    check("module: Docker's user-namespace remapping is off by default",
          settings["_type"] == "if" and settings["cond"] is False
          and mod["users"]["users"]["dockremap"]["cond"] is False, settings)
    rs = remap["virtualisation"]["docker"]["daemon"]["settings"]
    ru = remap["users"]["users"]["dockremap"]
    check("module: dockerUserNamespaceRemap sets userns-remap and declares dockremap's ranges",
          rs["cond"] is True and rs["content"] == {"userns-remap": "dockremap"}
          and ru["cond"] is True and ru["content"]["isSystemUser"]
          and ru["content"]["subUidRanges"] == [{"startUid": 100000, "count": 65536}]
          and ru["content"]["subGidRanges"] == [{"startGid": 100000, "count": 65536}]
          and remap["users"]["groups"]["dockremap"]["cond"] is True, (rs, ru))
    runner = mod["systemd"]["services"]["ccci-drone-runner"]["serviceConfig"]
    check("module: the runner allows user and PID namespaces, for checks, and no other",
          runner["RestrictNamespaces"] == "user pid", runner.get("RestrictNamespaces"))
    check("module: Docker must be enabled",
          any("needs Docker" in m for m in nodocker["failingAssertions"]),
          nodocker["failingAssertions"])


def package_checks(pkg, repo):
    bins_dir = os.path.join(repo, "bins")
    crates = sorted(n for n in os.listdir(bins_dir)
                    if n.startswith("ccci-") and os.path.isdir(os.path.join(bins_dir, n)))
    check("package: builds exactly the bins/ccci-* crates",
          pkg["cargoBuildFlags"] == [x for c in crates for x in ("-p", c)], pkg["cargoBuildFlags"])
    names = {}
    for c in crates:
        with open(os.path.join(bins_dir, c, "Cargo.toml"), "rb") as f:
            names[c] = tomllib.load(f).get("package", {}).get("name")
    check("package: each bins/ccci-* crate is named like its directory",
          all(names[c] == c for c in crates), names)
    check("package: unit tests only (lib and bins), no integration tests",
          pkg["cargoTestFlags"][-4:] == ["-p", "ccci", "--lib", "--bins"], pkg["cargoTestFlags"])
    lock = os.path.join(repo, "Cargo.lock")
    check("package: cargoLock.lockFile is the workspace Cargo.lock",
          os.path.realpath(pkg["cargoLock"]["lockFile"]) == os.path.realpath(lock))
    with open(lock, "rb") as f:
        packages = tomllib.load(f).get("package", [])
    git = [p["name"] for p in packages if p.get("source", "").startswith("git+")]
    check("package: Cargo.lock has no git dependencies (they would need outputHashes)",
          git == [], git)
    with open(os.path.join(repo, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    check("package: name and version from Cargo.toml",
          pkg["pname"] == manifest["package"]["name"]
          and pkg["version"] == manifest["workspace"]["package"]["version"])
    minus = [os.path.relpath(p, repo) for p in pkg["src"]["fileset"]["minus"]]
    check("package: the source leaves out target/, .git and the Nix files",
          os.path.realpath(pkg["src"]["root"]) == os.path.realpath(repo)
          and {"target", ".git", "nix", "flake.nix"} <= set(minus), minus)
    check("package: the source keeps probe-image, which the Rust constant PROBE_IMAGE reads",
          not any(m == "probe-image" or m == "." for m in minus), minus)
    with tempfile.TemporaryDirectory() as out:
        os.makedirs(os.path.join(out, "bin"))
        for b in ["ccci-deploy", "ccci-report", "abra", "fake-abra"]:
            open(os.path.join(out, "bin", b), "w").close()
        src = tempfile.mkdtemp(dir=out)
        os.makedirs(os.path.join(src, "overlays", "custom-html"))
        open(os.path.join(src, "overlays", "custom-html", "check.sh"), "w").close()
        subprocess.run(["bash", "-euc", pkg["postInstall"]], cwd=src, env={"out": out,
                       "PATH": os.environ["PATH"]}, check=True, capture_output=True)
        left = sorted(os.listdir(os.path.join(out, "bin")))
        overlay = os.path.exists(os.path.join(out, "share/ccci/overlays/custom-html/check.sh"))
    check("package: postInstall keeps only ccci-* binaries and installs the overlays",
          left == ["ccci-deploy", "ccci-report"] and overlay, (left, overlay))


def flake_checks(fl, repo, ev):
    check("flake: nixpkgs is its only input", fl["nixpkgsUrl"].startswith("github:NixOS/nixpkgs"))
    check("flake: packages ccci, default and drone-pipeline for both Linux systems",
          fl["packages"] == {s: ["ccci", "default", "drone-pipeline"]
                             for s in ("aarch64-linux", "x86_64-linux")}, fl["packages"])
    check("flake: packages.default is nix/package.nix",
          fl["default"]["callPackage"] == os.path.join(repo, "nix/package.nix")
          and fl["default"]["system"] == "x86_64-linux", fl["default"])
    check("flake: nixosModules.default imports the module and defaults its package to the flake's",
          fl["moduleImports"] == [os.path.join(repo, "nix/modules/ccci.nix")]
          and fl["modulePackage"]["priority"] == 1000
          and fl["modulePackage"]["value"] == fl["default"], fl["modulePackage"])
    check("flake: drone-pipeline is the default pipeline of nix/lib.nix",
          json.loads(fl["pipeline"]["text"]) == ev["defaultPipeline"])
    check("flake: the aarch64 pipeline asks for an arm64 runner",
          fl["aarch64Pipeline"]["platform"] == {"os": "linux", "arch": "arm64"})
    check("flake: exposes the lib", fl["libBinaries"] == ev["binaries"])


def flag_checks(ev, bindir):
    """Every --flag that the pipeline or a unit passes to a ccci binary is one its --help shows."""
    binaries = set(ev["binaries"])
    steps = [s["commands"] for s in ev["pipeline"]["steps"]]
    steps += [[u["serviceConfig"]["ExecStart"]] for u in ev["services"].values()]
    used = {}
    for commands in steps:
        # Arguments gathered with `set -- ...` reach the binary called with "$@".
        gathered = set()
        for line in commands:
            words = line.replace('"', " ").replace(";", " ").split()
            flags = lambda ws: {x for x in ws if x.startswith("--") and x != "--"}  # noqa: E731
            for i, w in enumerate(words):
                if w == "set" and words[i + 1:i + 2] == ["--"]:
                    gathered |= flags(words[i + 2:])
                name = os.path.basename(w)
                if name in binaries:
                    rest = words[i + 1:]
                    used.setdefault(name, set()).update(
                        flags(rest) | (gathered if "$$@" in rest or "$@" in rest else set()))
    for name in sorted(used):
        exe = os.path.join(bindir, name)
        if not os.path.exists(exe):
            continue
        out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        missing = sorted(f for f in used[name] if f not in text)
        check("%s --help documents the flags the pipeline and units pass (%s)"
              % (name, " ".join(sorted(used[name]))), out.returncode == 0 and not missing,
              "exit %s, not in --help: %s" % (out.returncode, missing))


def rust_probe_image(repo):
    """The image the Rust constant `PROBE_IMAGE` names, read from the source wherever it lives:
    a string literal, or `include_str!` of a file (relative to the .rs file, or to the crate's
    CARGO_MANIFEST_DIR), trimmed when the source trims it. Returns (image, where)."""
    found = []
    for path in glob.glob(os.path.join(repo, "**", "*.rs"), recursive=True):
        if "/target/" in path or "/.git/" in path:
            continue
        with open(path) as f:
            text = f.read()
        for m in re.finditer(r"\bconst\s+PROBE_IMAGE\s*:\s*&(?:'static\s+)?str\s*=\s*(.*?);", text, re.S):
            found.append((path, re.sub(r"\s+", "", m.group(1))))
    if len(found) != 1:
        raise ValueError("expected one `const PROBE_IMAGE: &str = ...;` in the Rust source, found %s"
                         % [os.path.relpath(p, repo) for p, _ in found])
    path, expr = found[0]
    where = os.path.relpath(path, repo)
    m = re.fullmatch(r'"([^"\\]*)"', expr)
    if m:
        return m.group(1), where
    m = re.fullmatch(r'include_str!\((?:concat!\(env!\("CARGO_MANIFEST_DIR"\),"([^"]+)"\)|"([^"]+)")\)'
                     r'(\.trim(?:_ascii)?(?:_end)?\(\))?', expr)
    if not m:
        raise ValueError("%s: PROBE_IMAGE is neither a string literal nor include_str! of a file: %s"
                         % (where, expr))
    if m.group(1) is not None:
        crate = os.path.dirname(path)
        while not os.path.exists(os.path.join(crate, "Cargo.toml")):
            crate = os.path.dirname(crate)
        file = crate + m.group(1)
    else:
        file = os.path.join(os.path.dirname(path), m.group(2))
    with open(file) as f:
        value = f.read()
    if m.group(3):
        value = value.rstrip() if "end" in m.group(3) else value.strip()
    return value, "%s (from %s)" % (where, os.path.relpath(file, repo))


def probe_checks(ev, mod, repo, root):
    """The probe image the Nix side builds and loads is the one the Rust constant names."""
    try:
        ref, where = rust_probe_image(repo)
    except (OSError, ValueError) as e:
        check("probe: PROBE_IMAGE is found in the Rust source", False, e)
        return
    check("probe: nix/lib.nix names the image PROBE_IMAGE names, %s: %s" % (where, ref),
          ev["probeImageRef"] == ref
          and "%s:%s" % (ev["probeImageName"], ev["probeImageTag"]) == ref,
          (ev["probeImageRef"], ev["probeImageName"], ev["probeImageTag"]))
    svc = ev["services"]
    loader, runner = svc.get(LOADER), svc["ccci-drone-runner"]
    check("probe: lib: %s exists, a oneshot that stays active once the image is loaded" % LOADER_UNIT,
          loader is not None and loader["serviceConfig"]["Type"] == "oneshot"
          and loader["serviceConfig"]["RemainAfterExit"] is True
          and loader["wantedBy"] == ["multi-user.target"], loader)
    if loader is None:
        return
    check("probe: lib: the loader needs Docker and comes after it",
          loader["requires"] == ["docker.service"] and loader["after"] == ["docker.service"]
          and loader["path"] == [root + "/docker"], loader)
    check("probe: lib: the runner wants the loader and starts after it",
          LOADER_UNIT in runner["after"] and LOADER_UNIT in runner["wants"]
          and LOADER_UNIT not in runner.get("requires", []), runner)
    sc = loader["serviceConfig"]
    check("probe: lib: the loader reaches only the Docker socket (AF_UNIX, no network, no secrets)",
          sc["RestrictAddressFamilies"] == ["AF_UNIX"] and sc["PrivateNetwork"] is True
          and sc["IPAddressDeny"] == "any" and "EnvironmentFile" not in sc
          and "LoadCredential" not in sc and "environment" not in loader, sc)
    script = ev["probeLoadScript"]
    check("probe: lib: the loader's script loads the archive unless %s already has its id" % ref,
          "docker load --quiet --input '%s/probe/image.tar.gz'" % root in script
          and "want=$(cat '%s/probe/id')" % root in script
          and "docker image inspect --format '{{.Id}}' '%s'" % ref in script, script)
    check("probe: lib: minimal settings without a probe image have no loader",
          LOADER not in ev["variants"]["minimal"]["services"])

    p = mod["probeImage"]
    ms = mod["systemd"]["services"]
    name, tag = ref.rsplit(":", 1)
    args = p["imageArgs"]
    check("probe: module: dockerTools.buildImage builds %s, tag %s" % (name, tag),
          args["name"] == name and args["tag"] == tag, args)
    check("probe: module: the image's root is pkgsStatic.busybox's bin/, its PATH and command sh",
          args["copyToRoot"]["paths"] == ["/nix/store/busybox-static"]
          and args["copyToRoot"]["pathsToLink"] == ["/bin"]
          and args["config"] == {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}, args)
    check("probe: module: services.ccci.probeImage holds the image and its id",
          mod["cfg"]["probeImage"] == p["path"] and p["ref"] == ref
          and 'ln -s %s "$out/image.tar.gz"' % p["image"] in p["script"]
          and 'probe_image_id %s > "$out/id"' % p["image"] in p["script"], p)
    loader = ms.get(LOADER)
    check("probe: module: %s runs the loader script on that image" % LOADER_UNIT,
          loader is not None and loader["serviceConfig"]["ExecStart"] == p["loader"]
          and p["loader"] == "/nix/store/writeShellScript-ccci-probe-image-load"
          and p["loaderText"] == ev["probeLoadScript"].replace(root + "/probe", p["path"])
          and loader["path"] == ["/nix/store/docker"], (loader, p["loaderText"]))
    mr = ms["ccci-drone-runner"]
    check("probe: module: the runner is ordered after the loader and wants it",
          LOADER_UNIT in mr["after"] and LOADER_UNIT in mr["wants"], mr)


def main():
    kind = sys.argv[1]
    if kind == "lib":
        lib_checks(load(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif kind == "module":
        module_checks(*(load(p) for p in sys.argv[2:7]))
    elif kind == "flags":
        flag_checks(load(sys.argv[2]), sys.argv[3])
    elif kind == "flake":
        flake_checks(load(sys.argv[2]), sys.argv[3], load(sys.argv[4]))
    elif kind == "package":
        package_checks(load(sys.argv[2]), sys.argv[3])
    elif kind == "probe":
        probe_checks(load(sys.argv[2]), load(sys.argv[3]), sys.argv[4], sys.argv[5])
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
