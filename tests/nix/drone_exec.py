"""Test-only emulation of how drone-runner-exec runs one pipeline stage.

Not Drone: a small model of the parts that decide what a recipe pipeline does, written from the
runner's source (drone-runners/drone-runner-exec: runtime/runner.go, runtime/execer.go,
engine/compiler/compiler.go, engine/compiler/util.go; drone/runner-go: shell/shell.go,
environ/environ.go; drone/envsubst: parse/scan.go):

- the whole config text goes through envsubst first: `$$` becomes `$`, `\\\\` and `\\/` lose
  their backslash, and `${...}` is replaced by build/stage/repo variables and build parameters;
- each step's commands become a script `set -e` + (`echo + <quoted command>`, command) run as
  `/bin/sh -e <script>` with the workspace as working directory;
- a step's environment holds the build parameters, then PATH and USER of the runner's own
  environment (nothing else from it), then the DRONE_* variables, HOME and DRONE_WORKSPACE;
- run policy: `when.status` matching both success and failure runs always, matching failure
  runs on failure only, otherwise on success; a non-zero exit fails the stage unless the step
  has `failure: ignore`; exit code 78 skips all remaining steps.

Cancellation and Drone's own timeout are not modelled (after either, no step runs at all).
"""

import json
import os
import shutil
import subprocess
import time


class SubstitutionError(Exception):
    pass


def envsubst(text):
    """drone/envsubst on text that must contain no substitution: returns the text Drone
    would parse, or raises when a `${` or a backslash escape would change it."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c == "$" and nxt == "$":
            out.append("$")
            i += 2
        elif c == "$" and nxt == "{":
            end = text.find("}", i)
            raise SubstitutionError(f"Drone would substitute {text[i:end + 1]!r}")
        elif c == "\\" and nxt in ("\\", "/"):
            raise SubstitutionError(f"Drone would drop a backslash in {text[max(0, i - 20):i + 20]!r}")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def go_quote(s):
    # Go's %q for the ASCII text used in commands; json.dumps escapes the same characters.
    return json.dumps(s)


def script(commands):
    """runner-go shell.Script: set -e, then each command traced with echo."""
    body = "".join(
        "\necho + %s\n%s\n" % (go_quote(c).replace("$", "\\$"), c) for c in commands
    )
    return "\nset -e\n%s\n" % body


def run_policy(step):
    status = (step.get("when") or {}).get("status") or []
    if not status:
        return "on-success"
    if "failure" in status and "success" in status:
        return "always"
    if "failure" in status:
        return "on-failure"
    return "on-success"


def run_stage(config_text, params, root, host_path, shell="/bin/sh", rewrite=None):
    """Runs the single pipeline in config_text. Returns (stage_failed, results) where results
    is a list of dicts: name, policy, ran, exit, output, seconds."""
    text = envsubst(config_text)
    # The file is YAML: comment lines, then one JSON document.
    pipeline = json.loads("\n".join(l for l in text.splitlines() if not l.startswith("#")))
    assert pipeline["kind"] == "pipeline" and pipeline["type"] == "exec", pipeline.get("type")

    home = os.path.join(root, "home", "drone")
    workspace = os.path.join(root, "drone", "src")
    opt = os.path.join(root, "opt")
    for d in (home, workspace, opt):
        os.makedirs(d, exist_ok=True)

    try:
        return _run_steps(pipeline, params, home, workspace, opt, host_path, shell, rewrite)
    finally:
        # engine.Destroy: the whole stage root goes when the stage ends.
        shutil.rmtree(root, ignore_errors=True)


def _run_steps(pipeline, params, home, workspace, opt, host_path, shell, rewrite):
    failed = False
    skip_all = False
    results = []
    for number, step in enumerate(pipeline["steps"], start=1):
        policy = run_policy(step)
        entry = {"name": step["name"], "policy": policy, "ran": False, "exit": None, "output": ""}
        results.append(entry)
        if skip_all or (policy == "on-success" and failed) or (policy == "on-failure" and not failed):
            continue
        commands = step["commands"]
        if rewrite:
            commands = [rewrite(c) for c in commands]
        path = os.path.join(opt, step["name"])
        with open(path, "w") as f:
            f.write(script(commands))
        os.chmod(path, 0o700)
        env = dict(params)
        env.update({"PATH": host_path, "USER": os.environ.get("USER", "root")})
        env.update({
            "CI": "true",
            "DRONE": "true",
            "DRONE_BUILD_EVENT": "custom",
            "DRONE_BUILD_NUMBER": "7",
            "DRONE_STAGE_NUMBER": "1",
            "DRONE_STAGE_STATUS": "failure" if failed else "success",
            "DRONE_STEP_NAME": step["name"],
            "DRONE_STEP_NUMBER": str(number),
            "HOME": home,
            "DRONE_HOME": workspace,
            "DRONE_WORKSPACE": workspace,
            "GIT_TERMINAL_PROMPT": "0",
        })
        for k, v in (step.get("environment") or {}).items():
            env[k] = str(v)
        start = time.monotonic()
        proc = subprocess.run(
            [shell, "-e", path], cwd=workspace, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        )
        entry.update(ran=True, exit=proc.returncode, output=proc.stdout,
                     seconds=time.monotonic() - start)
        if proc.returncode != 0 and step.get("failure") != "ignore":
            failed = True
        if proc.returncode == 78:
            skip_all = True
    return failed, results
