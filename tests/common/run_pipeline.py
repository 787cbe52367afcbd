"""TEST DOUBLE of the Drone side of a build: runs one pipeline file through the drone-runner-exec
emulation of tests/nix/drone_exec.py, with the build's parameters, the given PATH, and the
host's /etc/ccci/env replaced by ENV_FILE. Prints {"failed": bool, "steps": [...]} as JSON.

usage: run_pipeline.py PIPELINE_FILE PARAMS_JSON ENV_FILE PATH
"""

import json
import os
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "nix"))
import drone_exec  # noqa: E402


def main():
    pipeline_file, params_json, env_file, path = sys.argv[1:5]
    with open(pipeline_file) as f:
        config = f.read()
    with open(params_json) as f:
        params = json.load(f)
    stage_root = tempfile.mkdtemp(prefix="ccci-bridge-drone-")

    def rewrite(command):
        return ". " + env_file if command == ". /etc/ccci/env" else command

    failed, steps = drone_exec.run_stage(config, params, stage_root, path, rewrite=rewrite)
    print(json.dumps({"failed": failed, "steps": steps}))


if __name__ == "__main__":
    main()
