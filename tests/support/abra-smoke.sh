#!/usr/bin/env bash
# Smoke test of the abra TEST DOUBLE (tests/support/abra) against the local Docker Swarm.
# Builds the local test image, makes a throwaway recipe repo, runs
#   new --secrets -> deploy --chaos -> (labels, env pin, app ls, HTTP, secret, refusals)
#   -> deploy --force <tag> (non-chaos) -> undeploy -> volume remove -> secret remove -> remove
# and checks that nothing of the stack is left. Everything it creates is named smok-<6 hex>...
# and is removed on success and on failure (trap).
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ABRA=$HERE/abra

HEX=$(head -c 3 /dev/urandom | od -An -tx1 | tr -d ' \n')
DOMAIN="smok-$HEX.ccci.localhost"
STACK="smok-${HEX}_ccci_localhost"
TMP=$(mktemp -d /tmp/abra-smoke.XXXXXX)
export ABRA_DIR=$TMP/abra
IMG_DIR=$TMP/img
SRC=$TMP/recipe-src
FAILED=1

say() { printf '[smoke] %s\n' "$*" >&2; }
fail() {
    printf '[smoke] FAIL: %s\n' "$*" >&2
    exit 1
}
abra() { "$ABRA" "$@"; }

# ---- cleanup: only objects of our own stack (name/label smok-<hex>...) -----------------------
wait_gone() { # $1 = seconds
    local end=$((SECONDS + $1))
    while ((SECONDS < end)); do
        if [[ -z $(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK") &&
            -z $(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK") ]]; then
            return 0
        fi
        sleep 1
    done
    return 1
}

cleanup() {
    local rc=$?
    set +e
    [[ $STACK == smok-* ]] || return
    if ((FAILED)); then
        say "cleaning up after failure (rc=$rc)"
        [[ -f $ABRA_DIR/double-calls.log ]] && { say "double calls:"; cat "$ABRA_DIR/double-calls.log" >&2; }
    fi
    local -a ids
    mapfile -t ids < <(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK")
    ((${#ids[@]} == 0)) || docker service rm "${ids[@]}" >/dev/null
    wait_gone 90 || say "WARNING: containers of $STACK still present"
    local n
    for n in $(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK"); do
        docker network rm "$n" >/dev/null
    done
    for n in $(docker secret ls --format '{{.Name}}' | grep -E "^${STACK}_"); do docker secret rm "$n" >/dev/null; done
    for n in $({
        docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK"
        docker volume ls -q | grep -E "^${STACK}_"
    } | sort -u); do
        docker volume rm "$n" >/dev/null
    done
    [[ $TMP == /tmp/abra-smoke.* ]] && rm -rf -- "$TMP"
    if ((FAILED)); then say "RESULT: FAIL"; else say "RESULT: PASS"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

docker info --format '{{.Swarm.LocalNodeState}}' | grep -qx active || fail "swarm is not active"

# ---- local test image ------------------------------------------------------------------------
say "building ccci-dbl:1"
mkdir -p "$IMG_DIR"
cp /bin/busybox "$IMG_DIR/"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\n' >"$IMG_DIR/Dockerfile"
docker build -q -t ccci-dbl:1 "$IMG_DIR" >/dev/null 2>"$TMP/build.err" || { cat "$TMP/build.err" >&2; fail "docker build"; }

# ---- throwaway recipe repo -------------------------------------------------------------------
say "creating recipe repo"
mkdir -p "$SRC"
cat >"$SRC/compose.yml" <<'EOF'
version: "3.8"
services:
  app:
    image: ccci-dbl:1
    command: ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
    environment:
      - CONF_VERSION=${SMOKE_CONF_VERSION}
      - SMOKE_MARK=${SMOKE_MARK}
    ports:
      - target: 8080
        mode: host
    volumes:
      - content:/www
    secrets:
      - source: api_key
        target: api_key
    deploy:
      labels:
        - "coop-cloud.${STACK_NAME}.version=1.0.0+1"
secrets:
  api_key:
    external: true
    name: ${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}
volumes:
  content:
EOF
cat >"$SRC/.env.sample" <<'EOF'
TYPE=smoke
DOMAIN=smoke.example.com
SECRET_API_KEY_VERSION=v1 # length=32
SMOKE_MARK="tag-one"
EOF
printf 'export SMOKE_CONF_VERSION=v7\n' >"$SRC/abra.sh"
g() { git -C "$SRC" -c user.name=smoke -c user.email=smoke@ccci.localhost "$@"; }
g init -q -b main
g add -A
g commit -q -m one
g tag -a -m 1.0.0+1 1.0.0+1
sed -i 's/tag-one/tag-two/' "$SRC/.env.sample"
g commit -q -am two
g tag -a -m 1.1.0+1 1.1.0+1
echo "# head" >>"$SRC/abra.sh"
g commit -q -am three
HEAD_SHA=$(g rev-parse --short=8 HEAD)
TAG2_SHA=$(g rev-parse --short=8 '1.1.0+1^{commit}')
mkdir -p "$ABRA_DIR/recipes"
git clone -q "$SRC" "$ABRA_DIR/recipes/smoke"
R=$ABRA_DIR/recipes/smoke

# ---- help / drift probe ----------------------------------------------------------------------
HELP=$(abra app deploy --help)
[[ $HELP == *"-C, --chaos "* ]] || fail "--chaos missing from deploy --help"
HELP=$(ABRA_DOUBLE_DROP_FLAG=--chaos abra app deploy --help)
[[ $HELP != *"--chaos"* ]] || fail "ABRA_DOUBLE_DROP_FLAG ignored"

# ---- app new ---------------------------------------------------------------------------------
say "app new $DOMAIN"
abra app new smoke -n -o --server default --domain "$DOMAIN" --secrets
ENVF=$ABRA_DIR/servers/default/$DOMAIN.env
[[ -f $ENVF ]] || fail "env file not created"
grep -qx "TYPE=smoke:1.1.0+1" "$ENVF" || fail "TYPE pin not written: $(grep TYPE "$ENVF")"
grep -qx "DOMAIN=$DOMAIN" "$ENVF" || fail "DOMAIN not set"
[[ $(git -C "$R" rev-parse --short=8 HEAD) == "$TAG2_SHA" ]] || fail "app new did not check out the latest tag"
docker secret inspect "${STACK}_api_key_v1" >/dev/null || fail "secret not created"
if abra app new smoke -n -o -s default -D "$DOMAIN" 2>/dev/null; then fail "second app new accepted"; fi

say "app secret generate: one by name and version, then --all (generate=false skipped)"
printf 'SECRET_EXTRA_VERSION=v1 # length=20\nSECRET_MANUAL_VERSION=v1 # generate=false\n' >>"$ENVF"
abra app secret generate "$DOMAIN" extra v1 -n
docker secret inspect "${STACK}_extra_v1" >/dev/null || fail "secret generate did not create ${STACK}_extra_v1"
if abra app secret generate "$DOMAIN" extra v1 -n 2>/dev/null; then fail "generating an existing secret was accepted"; fi
if abra app secret generate "$DOMAIN" extra v2 -n 2>/dev/null; then fail "a version other than the .env's was accepted"; fi
if abra app secret generate "$DOMAIN" -a -n 2>/dev/null; then fail "--all over existing secrets was accepted"; fi
docker secret rm "${STACK}_extra_v1" "${STACK}_api_key_v1" >/dev/null
abra app secret generate "$DOMAIN" -a -n
docker secret inspect "${STACK}_api_key_v1" "${STACK}_extra_v1" >/dev/null || fail "--all did not generate every secret"
if docker secret inspect "${STACK}_manual_v1" >/dev/null 2>&1; then fail "a generate=false secret was generated"; fi
docker secret rm "${STACK}_extra_v1" >/dev/null

# ---- deploy --chaos at the head --------------------------------------------------------------
git -C "$R" checkout -q main
say "app deploy --chaos (head $HEAD_SHA)"
abra app deploy "$DOMAIN" -n -o -C -D
label() { docker service inspect "${STACK}_app" --format "{{index .Spec.Labels \"coop-cloud.$STACK.$1\"}}"; }
[[ $(label chaos-version) == "$HEAD_SHA" ]] || fail "chaos-version label $(label chaos-version) != $HEAD_SHA"
[[ $(label chaos) == true ]] || fail "chaos label"
[[ $(label recipe) == smoke ]] || fail "recipe label"
[[ $(label version) == 1.0.0+1 ]] || fail "version label should stay as declared by the compose on chaos"
grep -qx "TYPE=smoke:$HEAD_SHA" "$ENVF" || fail "TYPE after chaos deploy: $(grep TYPE "$ENVF")"
ENVS=$(docker service inspect "${STACK}_app" --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}')
[[ $ENVS == *'"CONF_VERSION=v7"'* && $ENVS == *'"SMOKE_MARK=tag-two"'* ]] || fail "env not passed: $ENVS"
NTASKS=$(docker service ps -q "${STACK}_app" | wc -l)
[[ $NTASKS == 1 ]] || fail "label update restarted the task ($NTASKS tasks)"
CID=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_app" | head -n1)
[[ -n $CID ]] || fail "no container"
[[ -n $(docker exec "$CID" cat /run/secrets/api_key) ]] || fail "secret not mounted"
docker exec "$CID" sh -c 'echo smoke-ok > /www/index.html'
PORT=$(docker port "$CID" 8080/tcp | head -n1 | sed 's/.*://')
BODY=$(curl -fsS --max-time 5 "http://127.0.0.1:$PORT/index.html") || fail "HTTP check failed on port $PORT"
[[ $BODY == smoke-ok ]] || fail "unexpected body $BODY"
LS=$(abra app ls -n -S -m)
[[ $LS == *"\"domain\":\"$DOMAIN\",\"status\":\"deployed\",\"chaos\":\"true\",\"chaosVersion\":\"$HEAD_SHA\""* ]] ||
    fail "app ls output: $LS"
if abra app deploy "$DOMAIN" -n -o -D -c 2>"$TMP/err"; then fail "redeploy without --force accepted"; fi
grep -q 'already deployed' "$TMP/err" || fail "no 'already deployed' error"

# ---- non-chaos refusals and redeploy of a tag ------------------------------------------------
touch "$R/compose.extra.yml"
if abra app deploy "$DOMAIN" 1.0.0+1 -n -o -f -D -c 2>"$TMP/err"; then fail "dirty tree accepted"; fi
grep -qx 'FATA smoke has locally unstaged changes' "$TMP/err" || fail "wrong dirty error: $(cat "$TMP/err")"
rm -f "$R/compose.extra.yml"
say "app deploy --force 1.0.0+1"
abra app deploy "$DOMAIN" 1.0.0+1 -n -o -f -D
[[ $(label chaos) == false ]] || fail "chaos label after non-chaos deploy"
[[ $(label version) == 1.0.0+1 ]] || fail "version label after non-chaos deploy"
[[ -z $(label chaos-version) ]] || fail "stale chaos-version label"
grep -qx "TYPE=smoke:1.0.0+1" "$ENVF" || fail "TYPE after tag deploy"
ENVS=$(docker service inspect "${STACK}_app" --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}')
[[ $ENVS == *'"SMOKE_MARK=tag-two"'* ]] || fail "env file values must come from the app .env: $ENVS"
if abra app remove "$DOMAIN" -n -f 2>/dev/null; then fail "remove of a deployed app accepted"; fi

# ---- teardown through the double -------------------------------------------------------------
say "undeploy"
abra app undeploy "$DOMAIN" -n
wait_gone 120 || fail "stack containers did not go away"
say "volume remove / secret remove / remove"
abra app volume remove "$DOMAIN" -f -n
abra app secret remove "$DOMAIN" -a -n
abra app remove "$DOMAIN" -f -n
[[ ! -e $ENVF ]] || fail "env file still present"

# ---- nothing left ----------------------------------------------------------------------------
for _ in $(seq 30); do
    [[ -z $(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK") ]] && break
    sleep 1
done
left=""
left+=$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK")
left+=$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")
left+=$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK")
left+=$(docker network ls --format '{{.Name}}' | grep -E "^${STACK}_" || true)
left+=$(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK")
left+=$(docker volume ls -q | grep -E "^${STACK}_" || true)
left+=$(docker secret ls --format '{{.Name}}' | grep -E "^${STACK}_" || true)
[[ -z $left ]] || fail "leftovers: $left"
[[ $(grep -c . "$ABRA_DIR/double-calls.log") -ge 10 ]] || fail "call log too short"
grep -qP "^app\tdeploy\t$DOMAIN\t-n\t-o\t-C\t-D$" "$ABRA_DIR/double-calls.log" || fail "call log format"
FAILED=0
say "all checks passed for $STACK"
