#!/usr/bin/env bash
# Runs what the Nix side does with the probe image against this host's Docker, on a copy of the
# image under a tag of its own (eval.nix `probeTest.ref`, unique per run), which it removes
# again (the image itself stays: the tag is one more name for the probe image already here):
#
#   - the builder script of nix/probe-image.nix (as module-eval.nix records it), run on a
#     `docker save` of that copy, writes the id Docker itself gives the image;
#   - the loader script (nix/lib.nix `probeImageLoadScript`) loads the archive when the tag is
#     absent, skips loading when the tag has that id, and fails when the archive does not carry
#     the tag it was asked for.
#
# Prints one `PASS name` or `FAIL name: reason` line per check; without Docker or without the
# probe image here, says so and checks nothing.
#
# usage: probe_image_test.sh EVAL_JSON MODULE_JSON WORK_DIR

set -uo pipefail

eval_json=$1 module_json=$2 dir=$3/probe-test
failed=0
pass() { echo "PASS probe image, with Docker: $1"; }
fail() {
	failed=1
	echo "FAIL probe image, with Docker: $1"
}

ref=$(jq -r .probeImageRef "$eval_json")
tag=$(jq -r .probeTest.ref "$eval_json")
archive=$(jq -r .probeTest.archive "$eval_json")
id_file=$(jq -r .probeTest.idFile "$eval_json")
if ! timeout 20 docker info >/dev/null 2>&1; then
	echo "skipped the probe image checks with Docker: no Docker daemon answers here"
	exit 0
fi
if ! have=$(docker image inspect --format '{{.Id}}' "$ref" 2>/dev/null); then
	echo "skipped the probe image checks with Docker: no image $ref here (scripts/build-images builds it)"
	exit 0
fi
if docker image inspect "$tag" >/dev/null 2>&1; then
	fail "the test tag $tag exists already: not touching it"
	exit 1
fi
mkdir -p "$dir" "$(dirname "$archive")" "$(dirname "$id_file")"
untag() { docker image rm "$tag" >/dev/null 2>&1 || true; }
trap untag EXIT

docker tag "$ref" "$tag" && docker save "$tag" | gzip -n >"$archive" && untag || {
	fail "could not save a copy of $ref as $tag"
	exit 1
}

# The builder of nix/probe-image.nix, on this archive instead of the stub's store path.
image=$(jq -r .probeImage.image "$module_json")
builder=$(jq -r .probeImage.script "$module_json")
out=$dir/built
if out=$out bash -euo pipefail -c "${builder//"$image"/"$archive"}" >"$dir/built.log" 2>&1; then
	built_id=$(cat "$out/id")
	if [ "$built_id" = "$have" ] && [ "$(readlink "$out/image.tar.gz")" = "$archive" ]; then
		pass "nix/probe-image.nix's builder writes the id Docker gives the image ($have)"
	else
		fail "nix/probe-image.nix's builder wrote id $built_id, Docker says $have"
	fi
	cp "$out/id" "$id_file"
else
	fail "nix/probe-image.nix's builder failed: $(tail -n 3 "$dir/built.log")"
	exit 1
fi

run() { bash -c "$(jq -r "$1" "$eval_json")" 2>&1; }

if out=$(run .probeTest.script) && [ "$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null)" = "$have" ] &&
	[[ $out == *"loaded $tag ($have; "* ]]; then
	pass "the loader loads the archive when $tag is absent"
else
	fail "the loader did not load $tag: $out"
fi
if out=$(run .probeTest.script) && [ "$out" = "$tag is loaded already ($have)" ]; then
	pass "the loader skips loading when $tag already has the archive's id"
else
	fail "the loader did not skip: $out"
fi
if out=$(run .probeTest.wrongRefScript); then
	fail "the loader succeeded although the archive carries no tag $tag-absent: $out"
elif [[ $out == *"gave no image $tag-absent"* ]]; then
	pass "the loader fails when the archive does not carry the tag it loads"
else
	fail "the loader failed, but not by naming the missing tag: $out"
fi
exit $failed
