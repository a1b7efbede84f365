#!/usr/bin/env bash
# Tests the `docker compose up` demo for real, on a machine with a Docker engine but no image
# registry (as CI runs it):
#  1. stand-ins for the base images, built once and kept: `debian:bookworm-slim` from a
#     debootstrap of Debian 12 (from the mirror this machine's apt uses), and
#     `dxflrs/garage:v2.5.0` from the garage binary installed with cargo;
#  2. the service image through the Dockerfile's `prebuilt` target, from host-built binaries;
#  3. `docker compose up` with the unchanged docker-compose.yml: the bench service must exit 0,
#     a file uploaded with curl to localhost:8000 must download with the same SHA-256, the
#     server must run as non-root, refuse requests without the demo token, serve the page to a
#     browser and JSON to API clients at /, and finish an
#     upload in flight when stopped; then the same
#     again on the kept volumes (garage-init is idempotent), the local-disk override, and
#     `down -v`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export COMPOSE_PROJECT_NAME=fastupload-ci
WORK=$(mktemp -d /tmp/docker-demo.XXXXXX)
log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'docker-demo: FAILED: %s\n' "$*" >&2; exit 1; }

if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
LOCAL=(-f docker-compose.yml -f docker-compose.local.yml)
compose() { "${COMPOSE[@]}" "$@"; }
CLUSTER=(-p "$COMPOSE_PROJECT_NAME-cluster" -f docker-compose.cluster.yml)
cleanup() {
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  compose "${CLUSTER[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. base image stand-ins -------------------------------------------------------------------
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The URI this machine's apt uses for Debian 12's main archive (deb822 or one-line sources).
debian_mirror() {
  python3 - <<'EOF'
import glob, re
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.lstrip().startswith("#"):
                key, value = line.split(":", 1)
                fields[key.strip().lower()] = value.split()
        if "bookworm" in fields.get("suites", []) and "main" in fields.get("components", []) \
                and fields.get("enabled", ["yes"]) != ["no"]:
            print(fields["uris"][0]); raise SystemExit
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line).split()
        if len(words) >= 4 and words[0] == "deb" and words[2] == "bookworm" and "main" in words[3:]:
            print(words[1]); raise SystemExit
raise SystemExit("no Debian bookworm main source in this machine's apt sources")
EOF
}

if ! have_image debian:bookworm-slim; then
  log "building the debian:bookworm-slim stand-in with debootstrap"
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
  mirror=$(debian_mirror)
  debootstrap --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log"; die "debootstrap"; }
  rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/archives/*.deb
  tar -C "$WORK/rootfs" -c . | docker import --change 'CMD ["bash"]' - debian:bookworm-slim >/dev/null
  rm -rf "$WORK/rootfs"
fi

if ! have_image dxflrs/garage:v2.5.0; then
  log "building the dxflrs/garage:v2.5.0 stand-in from the cargo-installed garage"
  command -v garage >/dev/null || cargo install garage --version 2.5.0 --locked
  garage --version | grep -q '2\.5\.0' || die "garage 2.5.0 expected, found $(garage --version)"
  mkdir -p "$WORK/garage-image"
  cp "$(command -v garage)" "$WORK/garage-image/garage"
  # The official image holds the binary alone, at /garage; this one needs Debian's libc too.
  printf 'FROM debian:bookworm-slim\nCOPY garage /garage\nCMD ["/garage", "server"]\n' \
    >"$WORK/garage-image/Dockerfile"
  docker build -q -t dxflrs/garage:v2.5.0 "$WORK/garage-image" >/dev/null
fi

# --- 2. the service image from host-built binaries ---------------------------------------------
log "building the images (Dockerfile targets prebuilt, garage-init and nginx)"
cargo build --release --locked -q -p upload-http -p bench-client
docker build -q --target prebuilt -t fastupload:latest . >/dev/null
docker build -q --target garage-init -t fastupload-garage-init:latest . >/dev/null
docker build -q --target nginx -t fastupload-nginx:latest . >/dev/null

log "validating the compose files"
compose config -q
compose "${LOCAL[@]}" config -q
compose "${CLUSTER[@]}" config -q

# --- 3. the demo -------------------------------------------------------------------------------
URL=http://127.0.0.1:8000
# The demo token docker-compose.yml configures (x-demo-token).
TOKEN=fu_demo_change-me-before-exposing-this-service
AUTH=(-H "Authorization: Bearer $TOKEN")
sha() { sha256sum "$1" | cut -d' ' -f1; }

# up_and_bench: `up`, wait for the bench service, require exit 0, show its table.
up_and_bench() {
  compose up -d --no-build
  local bench status
  bench=$(compose ps -q bench)
  [[ -n $bench ]] || die "no bench container"
  status=$(timeout 900 docker wait "$bench") || die "bench did not finish within 15 min"
  compose logs --no-color bench | tail -n 40
  [[ $status == 0 ]] || { compose logs --no-color server | tail -n 40; die "bench exited $status"; }
}

# upload_roundtrip NAME BYTES: a curl upload to localhost:8000 downloads with the same SHA-256.
upload_roundtrip() {
  head -c "$2" /dev/urandom >"$WORK/$1"
  local id
  id=$(curl -fsS "${AUTH[@]}" -T "$WORK/$1" "$URL/files/$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -fsS "${AUTH[@]}" -o "$WORK/$1.back" "$URL/files/$id"
  [[ $(sha "$WORK/$1") == $(sha "$WORK/$1.back") ]] || die "$1: downloaded bytes differ"
  echo "$1: $2 bytes uploaded and downloaded, sha256 $(sha "$WORK/$1")"
}

log "docker compose up (1/2)"
up_and_bench
upload_roundtrip demo.bin $((24 << 20))
# The published port is not open to everyone: no token, no files.
status=$(curl -s -o /dev/null -w '%{http_code}' "$URL/files")
[[ $status == 401 ]] || die "GET /files without a token answered $status, not 401"
# A browser gets the upload page; API clients keep the JSON.
curl -fsS -H 'Accept: text/html' "$URL/" | grep -q '<title>fastupload</title>' || die "no page for a browser at /"
curl -fsS "$URL/" | grep -q '"service":"fastupload"' || die "GET / no longer answers API clients with JSON"

server=$(compose ps -q server)
user=$(docker inspect -f '{{.Config.User}}' "$server")
uid=$(compose exec -T server id -u)
[[ $user == fastupload && $uid != 0 ]] || die "the server runs as '$user' (uid $uid)"
echo "server runs as $user (uid $uid)"

log "stopping the server with an upload in flight"
head -c $((16 << 20)) /dev/urandom >"$WORK/slow.bin"
curl -fsS "${AUTH[@]}" --limit-rate 4M -T "$WORK/slow.bin" "$URL/files/slow.bin" >"$WORK/slow.json" &
slow=$!
for _ in $(seq 100); do
  curl -fs "${AUTH[@]}" "$URL/metrics" | grep -q '^uploads_in_flight [1-9]' && break
  sleep 0.05
done
curl -fs "${AUTH[@]}" "$URL/metrics" | grep -q '^uploads_in_flight [1-9]' || die "the slow upload never started"
compose stop server
wait "$slow" || die "the upload in flight was cut off by the shutdown"
grep -q "$(sha "$WORK/slow.bin")" "$WORK/slow.json" || die "the upload in flight stored other bytes"
echo "the upload in flight finished during the graceful shutdown: $(cat "$WORK/slow.json")"

log "docker compose down, then up again on the same volumes (2/2)"
compose down
up_and_bench
curl -fsS "${AUTH[@]}" "$URL/files" | grep -q "$(sha "$WORK/demo.bin")" || die "files stored before the restart are gone"
echo "files stored before the restart are still listed"

log "the local-disk override"
compose down
compose "${LOCAL[@]}" up -d --no-build server
for _ in $(seq 200); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.1; done
compose "${LOCAL[@]}" exec -T server upload-http --print-config | grep -q 'type = "local"' ||
  die "the override did not switch the server to local disk"
upload_roundtrip local.bin $((3 << 20))

log "docker compose down -v"
compose "${LOCAL[@]}" down -v

# --- 4. the cluster: three replicas behind nginx over a three-node Garage -----------------------
log "the cluster (docker-compose.cluster.yml): up"
compose "${CLUSTER[@]}" up -d --no-build
URL=http://127.0.0.1:8080
for _ in $(seq 600); do curl -fs -o /dev/null "$URL/readyz" && break; sleep 0.2; done
curl -fs -o /dev/null "$URL/readyz" || { compose "${CLUSTER[@]}" ps; compose "${CLUSTER[@]}" logs --no-color | tail -n 60; die "the balancer never became ready"; }
upload_roundtrip cluster.bin $((24 << 20))

log "the cluster: uploads through the balancer while a replica, a Garage node, then both die and return"
server2=$(compose "${CLUSTER[@]}" ps -q server-2)
garage2=$(compose "${CLUSTER[@]}" ps -q garage-2)
# Each fault phase lasts PHASE; every phase must heal within HEAL_MS (a replica's restart and
# its health check, or Garage's failover, and nginx's retry of a dead replica).
PHASE=${CHAOS_PHASE:-12s} HEAL_MS=${CHAOS_HEAL_MS:-10000}
target/release/bench-client --token "$TOKEN" --json "$WORK/chaos.json" chaos "$URL" \
  --phase-length "$PHASE" \
  --phase "replica killed=docker kill $server2 >/dev/null" \
  --phase "replica back=docker start $server2 >/dev/null" \
  --phase "node killed=docker kill $garage2 >/dev/null" \
  --phase "node back=docker start $garage2 >/dev/null" \
  --phase "both killed=docker kill $server2 $garage2 >/dev/null" \
  --phase "both back=docker start $server2 $garage2 >/dev/null" ||
  { compose "${CLUSTER[@]}" logs --no-color | tail -n 60; die "the chaos run lost or corrupted acknowledged uploads"; }
python3 - "$WORK/chaos.json" "$HEAL_MS" <<'EOF'
import json, sys
report, bound = json.load(open(sys.argv[1])), float(sys.argv[2])
for phase in report["phases"]:
    command = phase["command"]
    if command and not command[1]:
        sys.exit(f"{phase['name']}: the command failed: {command[0]}")
    healed = phase["healed_after_ms"]
    if healed is not None and healed > bound:
        sys.exit(f"{phase['name']}: uploads recovered only after {healed:.0f} ms (bound {bound:.0f})")
    if phase["acknowledged"] == 0:
        sys.exit(f"{phase['name']}: no upload was acknowledged")
print(f"every phase healed within {bound:.0f} ms; lost {report['lost']}, corrupt {report['corrupt']}")
EOF

log "the cluster: a tus upload whose replica dies mid-PATCH is finished through the balancer"
TUS=(-H 'Tus-Resumable: 1.0.0')
size=$((24 << 20))
head -c "$size" /dev/urandom >"$WORK/resume.bin"
location=$(curl -fsS "${AUTH[@]}" "${TUS[@]}" -H "Upload-Length: $size" -X POST -D - -o /dev/null "$URL/uploads/" |
  tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
[[ -n $location ]] || die "no tus upload was created"
# A first PATCH of 8 MiB is acknowledged; the second, slow one is cut by the kill.
first=$((8 << 20))
head -c "$first" "$WORK/resume.bin" | curl -fsS "${AUTH[@]}" "${TUS[@]}" -H 'Upload-Offset: 0' \
  -H 'Content-Type: application/offset+octet-stream' -X PATCH --data-binary @- "$URL$location" >/dev/null
tail -c +$((first + 1)) "$WORK/resume.bin" | curl -fsS "${AUTH[@]}" "${TUS[@]}" -H "Upload-Offset: $first" \
  -H 'Content-Type: application/offset+octet-stream' --limit-rate 4M -X PATCH --data-binary @- \
  "$URL$location" >/dev/null 2>&1 &
patch=$!
# The replica receiving it: the one with an upload in flight (addressed directly, fixed addresses).
victim=
for _ in $(seq 100); do
  for n in 1 2 3; do
    curl -fs "${AUTH[@]}" "http://10.213.47.1$n:8000/metrics" | grep -q '^uploads_in_flight [1-9]' && { victim=$n; break 2; }
  done
  sleep 0.1
done
[[ -n $victim ]] || die "no replica was receiving the PATCH"
sleep 1
docker kill "$(compose "${CLUSTER[@]}" ps -q "server-$victim")" >/dev/null
wait "$patch" && die "the PATCH finished although its replica was killed"
offset=
for _ in $(seq 60); do
  offset=$(curl -fsS "${AUTH[@]}" "${TUS[@]}" -I "$URL$location" | tr -d '\r' | awk 'tolower($1) == "upload-offset:" { print $2 }') && [[ -n $offset ]] && break
  sleep 0.5
done
# What was acknowledged is kept; what the killed replica had not committed is sent again.
((offset >= first && offset < size)) || die "the offset after the kill is '$offset' of $size"
# The killed replica's lease on the upload lapses within 15 s: until then another replica says 423.
status=
for _ in $(seq 40); do
  status=$(tail -c +$((offset + 1)) "$WORK/resume.bin" | curl -sS -o /dev/null -w '%{http_code}' "${AUTH[@]}" "${TUS[@]}" \
    -H "Upload-Offset: $offset" -H 'Content-Type: application/offset+octet-stream' -X PATCH --data-binary @- "$URL$location") || true
  [[ $status == 204 ]] && break
  sleep 0.5
done
[[ $status == 204 ]] || die "the rest of the upload was refused ($status)"
curl -fsS "${AUTH[@]}" -o "$WORK/resume.back" "$URL/files/${location##*/}"
[[ $(sha "$WORK/resume.bin") == $(sha "$WORK/resume.back") ]] || die "the resumed upload downloads other bytes"
echo "a PATCH cut at $offset of $size bytes by killing server-$victim was finished on another replica; SHA-256 matches"
docker start "$(compose "${CLUSTER[@]}" ps -q "server-$victim")" >/dev/null

compose "${CLUSTER[@]}" down -v
echo "docker-demo: all checks passed"
