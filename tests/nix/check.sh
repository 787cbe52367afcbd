#!/usr/bin/env bash
# Checks of ccci's Nix side (flake.nix, nix/) that need no nixpkgs, which is not reachable here:
#
#   - every .nix file parses (nix-instantiate --parse); nixfmt (nixfmt_rs) formatting; deadnix;
#   - the pure functions of nix/lib.nix, evaluated with `nix-instantiate --eval --strict --json`,
#     give the expected units, environment, assertions and pipeline (assert_eval.py);
#   - the module, the package and the flake, evaluated against small stubs of nixpkgs
#     (module-eval.nix, package-eval.nix, flake-eval.nix), wire those functions up as intended;
#   - the probe image the module builds and loads is the one the Rust constant PROBE_IMAGE names
#     (read from the source), its loader unit comes before the runner, and the loader and the
#     image's builder script do what they should against this host's Docker
#     (probe_image_test.sh, on a copy of the image under a tag of its own);
#   - the units, rendered to unit files (render.nix) with the binaries built by
#     `cargo build --release`, pass `systemd-analyze verify` without a single warning and
#     `systemd-analyze security` under an exposure bound; the built binaries document in
#     --help every flag that the units and the pipeline pass them;
#   - nix/recipe-ci.drone.yml is what nix/lib.nix generates, validates against the Drone schema
#     (check-jsonschema), and behaves as intended when run through an emulation of
#     drone-runner-exec with stub binaries (drone_exec.py, pipeline_test.py).
#
# Installs its own tools (idempotent), exits non-zero on any failure and ends with
# `nix-checks: N passed, M failed`.
#
# usage: tests/nix/check.sh [--write]   (--write regenerates nix/recipe-ci.drone.yml)

set -uo pipefail

# The binaries the units and the pipeline call (nix/lib.nix `binaries`; checked below). One
# that is a binary target of the Cargo workspace must build and is verified; one that is not
# yet (its issue is not done) is skipped, and named at the end.
EXPECTED_BINARIES=(ccci-deploy ccci-assert ccci-upgrade ccci-backup ccci-restore ccci-teardown ccci-janitor ccci-report ccci-bridge)

# Highest `systemd-analyze security` exposure (0.0 best, 10.0 worst) a ccci unit may have, and
# a tighter bound for units that need less (the probe image loader: the Docker socket only).
MAX_EXPOSURE=4.0
declare -A UNIT_MAX_EXPOSURE=([ccci-probe-image.service]=1.5)

# Tool versions, pinned so that formatting verdicts do not change under us.
NIXFMT_RS_VERSION=0.5.3
DEADNIX_VERSION=1.3.1
CHECK_JSONSCHEMA_VERSION=0.39.0

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/nix
PIPELINE_FILE=$REPO/nix/recipe-ci.drone.yml
CARGO_BIN=${CARGO_HOME:-${HOME:-/root}/.cargo}/bin
VENV=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/ccci/nix-check-venv
export PATH="$CARGO_BIN:$PATH"

passed=0
failed=0
pass() {
	passed=$((passed + 1))
	echo "PASS $1"
}
fail() {
	failed=$((failed + 1))
	echo "FAIL $1"
}

# check NAME COMMAND...: passes when COMMAND exits 0; shows its output when it does not.
check() {
	local name=$1 out
	shift
	if out=$("$@" 2>&1); then
		pass "$name"
	else
		fail "$name"
		printf '%s\n' "$out" | tail -n 40 | sed 's/^/    /'
	fi
}

# tally NAME COMMAND...: COMMAND prints its own PASS/FAIL lines; a non-zero exit without any
# FAIL line (a crash) is one more failure.
tally() {
	local name=$1 out rc line fails=0
	shift
	out=$("$@" 2>&1)
	rc=$?
	while IFS= read -r line; do
		case $line in
		"PASS "*) pass "${line#PASS }" ;;
		"FAIL "*)
			fail "${line#FAIL }"
			fails=$((fails + 1))
			;;
		*) printf '    %s\n' "$line" ;;
		esac
	done <<<"$out"
	if [ "$rc" -ne 0 ] && [ "$fails" -eq 0 ]; then fail "$name exited $rc"; fi
}

# timed WHAT COMMAND...: runs an install step quietly, shows its output only when it fails.
timed() {
	local what=$1 t0=$SECONDS out
	shift
	if out=$("$@" 2>&1); then
		echo "installed $what in $((SECONDS - t0))s"
	else
		printf '%s\n' "$out" | tail -n 20 >&2
		echo "could not install $what" >&2
		return 1
	fi
}

# apt_install PACKAGE...: apt-get update (once per run), then install.
apt_updated=0
apt_install() {
	if [ $apt_updated = 0 ]; then
		timed "apt-get update" apt-get update -qq || return 1
		apt_updated=1
	fi
	timed "$* (apt)" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "$@"
}

install_tools() {
	local apt=() t0=$SECONDS
	command -v nix-instantiate >/dev/null || apt+=(nix-bin)
	command -v systemd-analyze >/dev/null || apt+=(systemd)
	command -v jq >/dev/null || apt+=(jq)
	if [ ${#apt[@]} -gt 0 ]; then
		apt_install "${apt[@]}" || return 1
	fi
	# A venv of its own: works whether python3 is pyenv's or Debian's (which refuses pip, PEP 668).
	if ! "$VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "version $CHECK_JSONSCHEMA_VERSION\$"; then
		if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
			apt_install python3-venv || return 1
			python3 -m venv --clear "$VENV" || return 1
		fi
		timed "check-jsonschema $CHECK_JSONSCHEMA_VERSION (pip, in $VENV)" \
			"$VENV/bin/pip" install -q --disable-pip-version-check \
			"check-jsonschema==$CHECK_JSONSCHEMA_VERSION" || return 1
	fi
	if ! "$CARGO_BIN/nixfmt" --numeric-version 2>/dev/null | grep -qx "$NIXFMT_RS_VERSION"; then
		timed "nixfmt_rs $NIXFMT_RS_VERSION (cargo)" \
			cargo install -q --locked --force nixfmt_rs --version "$NIXFMT_RS_VERSION" || return 1
	fi
	if ! "$CARGO_BIN/deadnix" --version 2>/dev/null | grep -q " $DEADNIX_VERSION\$"; then
		timed "deadnix $DEADNIX_VERSION (cargo)" \
			cargo install -q --locked --force deadnix --version "$DEADNIX_VERSION" || return 1
	fi
	echo "tools ready after $((SECONDS - t0))s"
}

render_pipeline() {
	echo "# Generated from nix/lib.nix (\`pipeline\`) by tests/nix/check.sh --write: do not edit."
	echo "# The recipe CI pipeline for Drone's exec runner; JSON is YAML. See docs/nixos.md."
	jq .defaultPipeline "$T/eval.json"
}

# shellcheck disable=SC2317 # called through check
# eval_json OUT FILE [ARGS...]: evaluates FILE strictly to JSON in OUT.
eval_json() {
	local out=$1
	shift
	nix-instantiate --eval --strict --json "$@" >"$out"
}

# The unit's own executable: the first word of ExecStart.
unit_executable() {
	sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$1"
}

main() {
	install_tools || {
		fail "install the tools"
		finish
	}

	T=$(mktemp -d)
	trap 'rm -rf "$T"' EXIT
	cd "$REPO" || exit 1

	# --- Nix files: parse, format, dead code -------------------------------------------------
	local nix_files=(flake.nix nix/*.nix nix/modules/*.nix tests/nix/*.nix) f
	for f in "${nix_files[@]}"; do
		check "parse $f" nix-instantiate --parse "$f"
	done
	check "nixfmt --check (nixfmt_rs $NIXFMT_RS_VERSION)" nixfmt --check "${nix_files[@]}"
	check "deadnix --fail" deadnix --fail "${nix_files[@]}"

	# --- Pure functions ------------------------------------------------------------------------
	local sentinel="ccci-test-secret-$RANDOM$RANDOM"
	mkdir -p "$T/secrets" "$T/pkg/bin" "$T/abra/bin" "$T/runner/bin" "$T/docker/bin" "$T/units" "$T/probe"
	printf 'DRONE_RPC_SECRET=%s\n' "$sentinel" >"$T/secrets/ccci.env"
	check "evaluate nix/lib.nix (tests/nix/eval.nix)" \
		eval_json "$T/eval.json" "$HERE/eval.nix" --argstr root "$T" \
		--argstr probeTestRef "ccci-nixcheck-probe:$$-$RANDOM"
	if [ ! -s "$T/eval.json" ]; then finish; fi
	tally "assert_eval.py lib" python3 "$HERE/assert_eval.py" lib "$T/eval.json" "$T" "$sentinel"

	local lib_binaries
	lib_binaries=$(jq -r '.binaries | sort | join(" ")' "$T/eval.json")
	check "EXPECTED_BINARIES lists the binaries of nix/lib.nix" \
		test "$(printf '%s\n' "${EXPECTED_BINARIES[@]}" | sort | xargs)" = "$lib_binaries"

	# --- Module and flake, against stubs of nixpkgs ---------------------------------------------
	local good='{ enable = true; abraPackage = "/nix/store/abra"; domainSuffix = "ci.example.org";
	  environmentFile = "/run/secrets/ccci.env"; allowlist = [ "git.coopcloud.tech/coop-cloud/custom-html" "git.coopcloud.tech/coop-cloud/gitea" ];
	  runner = { enable = true; rpcHost = "drone.example.org"; };
	  bridge = { enable = true; forgeUrl = "https://git.example.org"; organisation = "coop-cloud";
	    repositories = [ "coop-cloud/custom-html" ]; droneUrl = "https://drone.example.org";
	    droneRepository = "coop-cloud/recipe-ci"; forgeTokenFile = "/run/secrets/bridge-forge";
	    droneTokenFile = "/run/secrets/bridge-drone"; }; }'
	local variant ok=1
	for variant in good nosecret paths nodocker remap; do
		local values=$good extra=()
		case $variant in
		nosecret) values="$good // { environmentFile = null; }" ;;
		paths) values="$good // { allowlist = \"/etc/ccci/allowlist\"; }" ;;
		nodocker) extra=(--arg dockerEnable false) ;;
		remap) values="$good // { dockerUserNamespaceRemap = true; }" ;;
		esac
		nix-instantiate --eval --strict --json "$HERE/module-eval.nix" --arg values "$values" \
			"${extra[@]}" >"$T/module-$variant.json" 2>"$T/module-$variant.err" || {
			ok=0
			sed 's/^/    /' "$T/module-$variant.err"
		}
	done
	if [ $ok = 1 ]; then
		pass "evaluate nix/modules/ccci.nix against stubs (tests/nix/module-eval.nix)"
		tally "assert_eval.py module" python3 "$HERE/assert_eval.py" module \
			"$T/module-good.json" "$T/module-nosecret.json" "$T/module-paths.json" \
			"$T/module-nodocker.json" "$T/module-remap.json"
	else
		fail "evaluate nix/modules/ccci.nix against stubs (tests/nix/module-eval.nix)"
	fi

	if [ -s "$T/module-good.json" ]; then
		tally "assert_eval.py probe" python3 "$HERE/assert_eval.py" probe \
			"$T/eval.json" "$T/module-good.json" "$REPO" "$T"
		tally "probe_image_test.sh" "$HERE/probe_image_test.sh" "$T/eval.json" "$T/module-good.json" "$T"
	fi

	check "evaluate flake.nix outputs against stubs (tests/nix/flake-eval.nix)" \
		eval_json "$T/flake.json" "$HERE/flake-eval.nix"
	if [ -s "$T/flake.json" ]; then
		tally "assert_eval.py flake" python3 "$HERE/assert_eval.py" flake "$T/flake.json" "$REPO" "$T/eval.json"
	fi

	if compgen -G "bins/ccci-*/Cargo.toml" >/dev/null; then
		check "evaluate nix/package.nix against stubs (tests/nix/package-eval.nix)" \
			eval_json "$T/package.json" "$HERE/package-eval.nix"
		if [ -s "$T/package.json" ]; then
			tally "assert_eval.py package" python3 "$HERE/assert_eval.py" package "$T/package.json" "$REPO"
		fi
	else
		echo "skipped nix/package.nix: no bins/ccci-* crate yet"
	fi

	# --- Binaries: build what the workspace has ----------------------------------------------
	local metadata workspace_bins=() packages=() skipped=() built=() b pkg
	if metadata=$(cargo metadata --no-deps --format-version 1 --locked 2>"$T/metadata.err"); then
		pass "cargo metadata --locked (Cargo.lock is current, as the Nix build needs)"
	else
		fail "cargo metadata --locked (Cargo.lock is current, as the Nix build needs)"
		sed 's/^/    /' "$T/metadata.err"
		metadata='{"packages": [], "target_directory": "target"}'
	fi
	for b in "${EXPECTED_BINARIES[@]}"; do
		pkg=$(jq -r --arg b "$b" \
			'.packages[] | select(any(.targets[]; .name == $b and (.kind | index("bin")))) | .name' \
			<<<"$metadata")
		if [ -n "$pkg" ]; then
			workspace_bins+=("$b")
			packages+=(-p "$pkg")
		else
			skipped+=("$b")
		fi
	done
	local target
	target=$(jq -r .target_directory <<<"$metadata")
	if [ ${#workspace_bins[@]} -gt 0 ]; then
		local t0=$SECONDS
		check "cargo build --release ${workspace_bins[*]}" \
			cargo build --release --locked --quiet "${packages[@]}"
		echo "    (release build took $((SECONDS - t0))s)"
		for b in "${workspace_bins[@]}"; do
			if [ -x "$target/release/$b" ]; then
				ln -s "$target/release/$b" "$T/pkg/bin/$b"
				built+=("$b")
			else
				fail "$b is a workspace binary but $target/release/$b was not built"
			fi
		done
	fi

	tally "assert_eval.py flags" python3 "$HERE/assert_eval.py" flags "$T/eval.json" "$T/pkg/bin"

	# --- Units: render and verify --------------------------------------------------------------
	printf '#!/bin/sh\necho "stand-in for abra (tests/nix): abra is not installable here" >&2\nexit 3\n' \
		>"$T/abra/bin/abra"
	printf '#!/bin/sh\necho "stand-in for drone-runner-exec (tests/nix)" >&2\nexit 1\n' \
		>"$T/runner/bin/drone-runner-exec"
	# What the module's writeShellScript makes of the loader's script.
	{
		echo '#!/bin/sh'
		jq -r .probeLoadScript "$T/eval.json"
	} >"$T/probe/load"
	chmod +x "$T/abra/bin/abra" "$T/runner/bin/drone-runner-exec" "$T/probe/load"
	local d have_docker=0
	for d in /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system; do
		[ -e "$d/docker.service" ] && have_docker=1
	done
	if [ $have_docker = 0 ]; then
		# What NixOS's virtualisation.docker provides; this host has no docker.service.
		printf '[Unit]\nDescription=stand-in for docker.service\n[Service]\nExecStart=/bin/true\n' \
			>"$T/units/docker.service"
	fi
	local unit exe bound skip_units=()
	while IFS= read -r unit; do
		jq -r --arg u "$unit" '.units[$u]' "$T/eval.json" >"$T/units/$unit"
	done < <(jq -r '.units | keys[]' "$T/eval.json")
	for unit in $(jq -r '.units | keys[]' "$T/eval.json"); do
		case $unit in
		*.timer) exe=$(unit_executable "$T/units/${unit%.timer}.service") ;;
		*) exe=$(unit_executable "$T/units/$unit") ;;
		esac
		if [[ $exe == "$T/pkg/bin/"* ]] && [ ! -e "$exe" ]; then
			skip_units+=("$unit (needs ${exe##*/})")
			continue
		fi
		check "systemd-analyze verify $unit" verify_quietly "$T/units/$unit"
		if [[ $unit == *.service ]]; then
			bound=${UNIT_MAX_EXPOSURE[$unit]:-$MAX_EXPOSURE}
			check "systemd-analyze security $unit: exposure at most $bound" \
				systemd-analyze security --offline=yes --threshold="${bound/./}" "$T/units/$unit"
		fi
	done

	# --- Pipeline ------------------------------------------------------------------------------
	if [ "${1:-}" = --write ]; then
		render_pipeline >"$PIPELINE_FILE"
		echo "wrote $PIPELINE_FILE"
	fi
	check "nix/recipe-ci.drone.yml is what nix/lib.nix generates (tests/nix/check.sh --write)" \
		diff -u "$PIPELINE_FILE" <(render_pipeline)
	check "nix/recipe-ci.drone.yml validates against the Drone schema (check-jsonschema)" \
		"$VENV/bin/check-jsonschema" --builtin-schema vendor.drone-ci "$PIPELINE_FILE"
	tally "pipeline_test.py" python3 "$HERE/pipeline_test.py" "$T/eval.json" "$PIPELINE_FILE" "$T/pipeline"

	if [ ${#skipped[@]} -gt 0 ]; then
		echo "skipped, not in the Cargo workspace yet: ${skipped[*]}"
	fi
	if [ ${#skip_units[@]} -gt 0 ]; then
		echo "skipped unit verification: ${skip_units[*]}"
	fi
	finish
}

# shellcheck disable=SC2317 # called through check
# systemd-analyze verify exits 0 on unknown keys and bad values (it only warns), so any output
# counts as a failure.
verify_quietly() {
	local out
	out=$(systemd-analyze verify --man=no "$1" 2>&1) || {
		printf '%s\n' "$out"
		return 1
	}
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		return 1
	fi
}

finish() {
	echo "nix-checks: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit
}

main "$@"
