"""Runs the recipe CI pipeline through the drone-runner-exec emulation (drone_exec.py) with
stub ccci binaries, to check the pipeline's own logic: step order, arguments, what runs after a
failure, which exit status decides the build, time bounds, and that build parameters can neither
inject shell code nor override the host's CCCI_* settings.

The stubs record each call and exit as a scenario tells them; they are not ccci. Prints one
`PASS name` or `FAIL name: reason` line per check.

usage: pipeline_test.py EVAL_JSON PIPELINE_FILE WORKDIR
"""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import drone_exec  # noqa: E402

STUB = """#!{python}
# Stub of a ccci binary for the pipeline emulation (tests/nix): records the call, then
# behaves as the scenario in ../ctl/behaviour.json says.
import json, os, sys, time
ctl = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ctl")
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
key = name + ("-" + args[0] if name in ("ccci-assert", "ccci-bridge") and args else "")
with open(os.path.join(ctl, "calls.jsonl"), "a") as f:
    f.write(json.dumps({{"key": key, "argv": args, "cwd": os.getcwd(),
        "env": {{k: v for k, v in os.environ.items() if k.startswith("CCCI_")}},
        "recipe_env": os.environ.get(args[args.index("--recipe-env") + 1]) if "--recipe-env" in args else None}}) + "\\n")
with open(os.path.join(ctl, "behaviour.json")) as f:
    todo = json.load(f).get(key, {{}})
state = args[args.index("--state") + 1] if "--state" in args else None
if todo.get("refuse") and "--refusal" in args:
    with open(args[args.index("--refusal") + 1], "w") as f:
        f.write(todo["refuse"] + "\\n")
if todo.get("sleep"):
    time.sleep(todo["sleep"])
if name == "ccci-deploy" and state and not todo.get("no_state"):
    with open(state, "w") as f:
        json.dump({{"schema": "ccci.run/v1"}}, f)
if state and not os.path.exists(state) and name != "ccci-bridge":
    print(name + ": cannot read run-state " + state, file=sys.stderr)
    sys.exit(2)
sys.exit(todo.get("exit", 0))
"""

BINARIES = ["ccci-deploy", "ccci-assert", "ccci-upgrade", "ccci-backup", "ccci-restore", "ccci-teardown",
            "ccci-report", "ccci-bridge"]
OPS = ["deploy", "assert-install", "upgrade", "assert-upgrade", "backup", "assert-backup", "restore",
       "assert-restore", "assert-custom"]
STEPS = ["verify"] + OPS + ["teardown", "report", "publish"]
CALLS_ALL = ["ccci-deploy", "ccci-assert-install", "ccci-upgrade", "ccci-assert-upgrade",
             "ccci-backup", "ccci-assert-backup", "ccci-restore", "ccci-assert-restore",
             "ccci-assert-custom", "ccci-teardown", "ccci-report"]

PARAMS = {"RECIPE": "https://git.example.org/coop-cloud/custom-html.git",
          "REF": "0123456789abcdef0123456789abcdef01234567", "PR": "42"}
# The parameters ccci-bridge sends, and nothing else.
BRIDGE = {"CCCI_REQUEST_ID": "0123456789abcdef", "CCCI_RECIPE_REPO": "coop-cloud/custom-html",
          "CCCI_PR": "42", "CCCI_HEAD_SHA": "89abcdef0123456789abcdef0123456789abcdef",
          "CCCI_TRIGGER": "alice"}

results = []


def check(name, ok, why=""):
    results.append(ok)
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


class Harness:
    def __init__(self, work, env_file_text, env_file_path):
        self.work = work
        self.env_file_path = env_file_path
        self.stubbin = os.path.join(work, "stubbin")
        self.ctl = os.path.join(work, "ctl")
        os.makedirs(self.stubbin, exist_ok=True)
        os.makedirs(self.ctl, exist_ok=True)
        for b in BINARIES:
            p = os.path.join(self.stubbin, b)
            with open(p, "w") as f:
                f.write(STUB.format(python=sys.executable))
            os.chmod(p, 0o755)
        self.etc_env = os.path.join(work, "etc", "ccci", "env")
        os.makedirs(os.path.dirname(self.etc_env), exist_ok=True)
        with open(self.etc_env, "w") as f:
            f.write(env_file_text)

    def rewrite(self, command):
        # The host's env file lives in /etc; the emulation reads a copy instead.
        source = ". " + self.env_file_path
        if command == source:
            return ". " + self.etc_env
        return command

    def run(self, config_text, params, behaviour=None, shell="/bin/sh"):
        with open(os.path.join(self.ctl, "behaviour.json"), "w") as f:
            json.dump(behaviour or {}, f)
        calls_path = os.path.join(self.ctl, "calls.jsonl")
        if os.path.exists(calls_path):
            os.remove(calls_path)
        root = tempfile.mkdtemp(prefix="drone-", dir=self.work)
        host_path = self.stubbin + ":/usr/bin:/bin"
        failed, steps = drone_exec.run_stage(config_text, params, root, host_path, shell=shell,
                                             rewrite=self.rewrite)
        calls = []
        if os.path.exists(calls_path):
            with open(calls_path) as f:
                calls = [json.loads(line) for line in f]
        self.last_root = root
        return failed, {s["name"]: s for s in steps}, calls


def main():
    eval_json, pipeline_file, work = sys.argv[1:4]
    with open(eval_json) as f:
        ev = json.load(f)
    with open(pipeline_file) as f:
        config = f.read()
    fast = json.dumps(ev["fastPipeline"])
    h = Harness(work, ev["envFileText"], ev["envFile"])
    state = lambda root: os.path.join(root, "drone", "src", "ccci-run.json")  # noqa: E731

    for label, text in (("the pipeline file", config), ("the time-bound test pipeline", fast)):
        try:
            drone_exec.envsubst(text)
            check("Drone's substitution leaves %s as written" % label, True)
        except drone_exec.SubstitutionError as e:
            check("Drone's substitution leaves %s as written" % label, False, e)
            sys.exit(1)

    for first in (c for s in json.loads(drone_exec.envsubst(fast))["steps"] for c in s["commands"][:1]):
        if first != ". " + ev["envFile"]:
            check("every step sources the env file first", False, first)
            break
    else:
        check("every step sources the env file first", True)

    shells = [("sh", "/bin/sh")]
    if shutil.which("bash"):
        # NixOS's /bin/sh is bash.
        shells.append(("bash", shutil.which("bash")))
    for label, shell in shells:
        t = lambda name: "%s [%s]" % (name, label)  # noqa: E731

        failed, steps, calls = h.run(config, PARAMS, shell=shell)
        keys = [c["key"] for c in calls]
        check(t("all pass: every step runs in order and the build passes"),
              not failed and keys == CALLS_ALL and all(steps[s]["exit"] == 0 for s in STEPS),
              "failed=%s calls=%s" % (failed, keys))
        st = state(h.last_root)
        deploy = calls[0]["argv"] if calls else []
        check(t("deploy gets the build parameters as its inputs (RECIPE through its environment)"),
              deploy == ["--driver", "abra", "--recipe-env", "RECIPE", "--ref", PARAMS["REF"],
                         "--state", st] and calls[0]["recipe_env"] == PARAMS["RECIPE"], calls[:1])
        check(t("every later step gets the same run-state file"),
              all(c["argv"][-2:] == ["--state", st] or c["argv"][-4:-2] == ["--state", st]
                  for c in calls[1:]), [c["argv"] for c in calls[1:]])
        check(t("report prints text"),
              calls and calls[-1]["argv"] == ["--state", st, "--format", "text"],
              calls[-1]["argv"] if calls else None)
        expected_env = ev["pipelineEnvironment"]
        check(t("every ccci call sees the host's CCCI_* environment"),
              calls and all(c["env"] == expected_env for c in calls),
              calls[0]["env"] if calls else None)
        check(t("the log names recipe, ref and pull request"),
              "ccci: testing %s at %s (pull request 42)" % (PARAMS["RECIPE"], PARAMS["REF"])
              in steps["deploy"]["output"], steps["deploy"]["output"][-400:])

        token = "T0KEN-" + "x9"
        for recipe, shown in [("https://ci:%s@git.example/o/n.git" % token, "https://***@git.example/o/n.git"),
                              ("%s@git.example:o/n.git" % token, "***@git.example:o/n.git")]:
            failed, steps, calls = h.run(config, dict(PARAMS, RECIPE=recipe), shell=shell)
            check(t("the log and deploy's argv hide credentials in RECIPE (%s)" % shown),
                  ("ccci: testing %s at" % shown) in steps["deploy"]["output"]
                  and token not in steps["deploy"]["output"]
                  and calls and not any(token in a for a in calls[0]["argv"])
                  and calls[0]["recipe_env"] == recipe, (steps["deploy"]["output"][-400:], calls[:1]))

        failed, steps, calls = h.run(config, dict(PARAMS, RECIPE_NAME="custom-html"), shell=shell)
        check(t("RECIPE_NAME becomes --recipe-name"),
              calls and calls[0]["argv"][-2:] == ["--recipe-name", "custom-html"],
              calls[0]["argv"] if calls else None)

        failed, steps, calls = h.run(config, PARAMS, {"ccci-deploy": {"exit": 1},
                                                      "ccci-report": {"exit": 1}}, shell=shell)
        check(t("deploy fails: later steps, teardown and report still run; build fails"),
              failed and [c["key"] for c in calls] == CALLS_ALL and steps["deploy"]["exit"] == 1,
              "failed=%s calls=%s" % (failed, [c["key"] for c in calls]))

        failed, steps, calls = h.run(config, PARAMS, {"ccci-assert-upgrade": {"exit": 1}},
                                     shell=shell)
        check(t("an op's failure alone does not decide the build: the report's exit does"),
              not failed and steps["assert-upgrade"]["exit"] == 1
              and steps["teardown"]["ran"] and steps["report"]["ran"],
              "failed=%s" % failed)

        failed, steps, calls = h.run(config, PARAMS, {"ccci-assert-custom": {"exit": 1},
                                                      "ccci-report": {"exit": 1}}, shell=shell)
        check(t("a failing report fails the build"),
              failed and steps["report"]["exit"] == 1, "failed=%s" % failed)

        failed, steps, calls = h.run(config, PARAMS, {"ccci-teardown": {"exit": 1}}, shell=shell)
        check(t("teardown fails: the build fails even when the report passes"),
              failed and steps["report"]["ran"] and steps["report"]["exit"] == 0,
              "failed=%s" % failed)

        params = {k: v for k, v in PARAMS.items() if k != "RECIPE"}
        failed, steps, calls = h.run(config, params, {"ccci-report": {}}, shell=shell)
        keys = [c["key"] for c in calls]
        check(t("missing RECIPE: a clear message, no deploy, nothing to tear down, build fails"),
              failed and steps["deploy"]["exit"] != 0
              and "set the build parameter RECIPE" in steps["deploy"]["output"]
              and "ccci-deploy" not in keys and "ccci-teardown" not in keys
              and "nothing to tear down" in steps["teardown"]["output"]
              and steps["teardown"]["exit"] == 0,
              "failed=%s calls=%s deploy=%r" % (failed, keys, steps["deploy"]["output"][-300:]))

        canary = os.path.join(h.work, "injected")
        evil = dict(PARAMS,
                    RECIPE='https://x.example/r.git"; touch %s; echo "' % canary,
                    REF="$(touch %s)`touch %s`${PATH}" % (canary, canary),
                    PR="1; touch %s" % canary)
        failed, steps, calls = h.run(config, evil, shell=shell)
        check(t("build parameters are data, never shell code"),
              not os.path.exists(canary) and calls
              and calls[0]["recipe_env"] == evil["RECIPE"] and calls[0]["argv"][5] == evil["REF"],
              calls[0]["argv"] if calls else "no calls")

        override = dict(PARAMS, CCCI_ABRA="/tmp/evil-abra", CCCI_ALLOWLIST="/tmp/evil-allowlist",
                        CCCI_STATE_DIR="/tmp/evil-state")
        failed, steps, calls = h.run(config, override, shell=shell)
        check(t("build parameters cannot override the host's CCCI_* settings"),
              calls and all(c["env"] == expected_env for c in calls),
              calls[0]["env"] if calls else "no calls")

        failed, steps, calls = h.run(config, BRIDGE, shell=shell)
        keys = [c["key"] for c in calls]
        st = state(h.last_root)
        refusal = os.path.join(h.last_root, "drone", "src", "ccci-refusal")
        run = ["--request", BRIDGE["CCCI_REQUEST_ID"], "--recipe-repo", BRIDGE["CCCI_RECIPE_REPO"],
               "--pr", "42", "--sha", BRIDGE["CCCI_HEAD_SHA"], "--trigger", "alice"]
        forge = ev["pipelineEnvironment"]["CCCI_BRIDGE_FORGE_URL"]
        check(t("a bridge build: verify first, the ops, publish last; the build passes"),
              not failed and keys == ["ccci-bridge-verify"] + CALLS_ALL + ["ccci-bridge-publish"],
              "failed=%s calls=%s" % (failed, keys))
        check(t("a bridge build tests the forge's repository at exactly the requested commit"),
              calls and calls[1]["recipe_env"] == forge + "/coop-cloud/custom-html.git"
              and calls[1]["argv"][:6] == ["--driver", "abra", "--recipe-env", "RECIPE", "--ref",
                                           BRIDGE["CCCI_HEAD_SHA"]], calls[1:2])
        check(t("verify and publish get the request, the run-state, the refusal file and the link"),
              calls and calls[0]["argv"] == ["verify"] + run + [
                  "--recipe-url", forge + "/coop-cloud/custom-html.git", "--refusal", refusal]
              and calls[-1]["argv"] == ["publish"] + run + [
                  "--state", st, "--refusal", refusal, "--link", "", "--build", "7"],
              [calls[0]["argv"], calls[-1]["argv"]] if calls else None)
        check(t("bridge steps see the host's settings, the forge's among them"),
              calls and all({k: v for k, v in c["env"].items() if k not in BRIDGE} == expected_env
                            for c in calls), calls[0]["env"] if calls else None)

        failed, steps, calls = h.run(config, BRIDGE, {"ccci-bridge-verify": {
            "exit": 1, "refuse": "@alice is no longer a member"}}, shell=shell)
        keys = [c["key"] for c in calls]
        check(t("a refused bridge build deploys nothing, still publishes, and fails"),
              failed and "ccci-deploy" not in keys and keys[-1:] == ["ccci-bridge-publish"]
              and "not tested: @alice is no longer a member" in steps["deploy"]["output"]
              and "nothing to tear down" in steps["teardown"]["output"],
              "failed=%s calls=%s" % (failed, keys))

        failed, steps, calls = h.run(config, PARAMS, shell=shell)
        check(t("a build without the bridge's parameters runs neither verify nor publish"),
              not failed and "not a build the bridge asked for" in steps["verify"]["output"]
              and "not a build the bridge asked for" in steps["publish"]["output"]
              and not any(c["key"].startswith("ccci-bridge") for c in calls))

        evil = dict(BRIDGE, CCCI_RECIPE_REPO='x"; touch %s; echo "' % canary,
                    CCCI_PR="1; touch %s" % canary, CCCI_TRIGGER="$(touch %s)" % canary)
        failed, steps, calls = h.run(config, evil, shell=shell)
        check(t("the bridge's parameters are data, never shell code"),
              not os.path.exists(canary) and calls
              and calls[0]["argv"][calls[0]["argv"].index("--recipe-repo") + 1]
              == evil["CCCI_RECIPE_REPO"], calls[0]["argv"] if calls else "no calls")

        failed, steps, calls = h.run(fast, PARAMS, {"ccci-deploy": {"sleep": 60},
                                                    "ccci-report": {"exit": 1}}, shell=shell)
        d = steps["deploy"]
        check(t("a step over its time bound is stopped (exit 124) and the rest still runs"),
              d["exit"] == 124 and d["seconds"] < 30 and steps["teardown"]["ran"]
              and steps["report"]["ran"] and failed,
              "deploy exit=%s after %.1fs" % (d["exit"], d.get("seconds", 0)))

    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
