#!/usr/bin/env bash
# Aggregate upload throughput of docker-compose.cluster.yml through its balancer with 1, 2 and 3
# replicas, next to one replica addressed directly, in one run: medians of REPS (3) rounds, each
# round measuring every configuration once, in turn. Each measurement is `bench-client upload`
# of FILES (12) x SIZE (16MiB) in parallel, multipart, from the host.
# The balancer serves N replicas by dropping the others from its config and reloading, so no
# request waits on a replica that is not there.
# Needs the images scripts/docker-demo.sh builds (fastupload, fastupload-garage-init,
# fastupload-nginx and the two stand-ins); run that once first.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3} FILES=${FILES:-12} SIZE=${SIZE:-16MiB}
TOKEN=fu_demo_change-me-before-exposing-this-service
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
CLUSTER=(-p fastupload-bench-cluster -f docker-compose.cluster.yml)
compose() { "${COMPOSE[@]}" "${CLUSTER[@]}" "$@"; }
for image in fastupload fastupload-garage-init fastupload-nginx; do
  docker image inspect "$image:latest" >/dev/null 2>&1 || { echo "no $image image: run scripts/docker-demo.sh once" >&2; exit 1; }
done
cargo build --release --locked -q -p bench-client
trap 'compose down -v >/dev/null 2>&1 || true' EXIT
compose up -d --no-build >/dev/null 2>&1
for _ in $(seq 600); do curl -fs -o /dev/null http://127.0.0.1:8080/readyz && break; sleep 0.2; done
lb=$(compose ps -q lb)

# serve N: the balancer sends to server-1..N only.
serve() {
  docker exec "$lb" sh -c "[ -e /tmp/all.conf ] || cp /etc/nginx/nginx.conf /tmp/all.conf
    cp /tmp/all.conf /etc/nginx/nginx.conf
    for n in 1 2 3; do [ \$n -le $1 ] || sed -i \"/server server-\$n:8000/d\" /etc/nginx/nginx.conf; done
    nginx -s reload"
  sleep 1
}
# rate URL: MB/s of one batch (after a sync, so no batch inherits another's dirty pages).
rate() {
  sync
  target/release/bench-client --token "$TOKEN" --json /tmp/bench-cluster.json upload "$1/files" \
    --files "$FILES" --size "$SIZE" --mode parallel >/dev/null
  python3 -c 'import json; r = json.load(open("/tmp/bench-cluster.json")); assert r["ok"] == r["files"] == r["verified"], r; print(round(r["mb_per_s"]))'
}
declare -A runs
for round in $(seq "$REPS"); do
  runs[direct]+="$(rate http://10.213.47.11:8000) "
  for n in 1 2 3; do
    serve "$n"
    runs[lb$n]+="$(rate http://127.0.0.1:8080) "
  done
  echo "round $round of $REPS done" >&2
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
direct=$(echo "${runs[direct]}" | median)
printf '\n%s x %s multipart in parallel, medians of %s (MB/s)\n' "$FILES" "$SIZE" "$REPS"
printf '%-36s %8s %10s   %s\n' configuration median "vs direct" runs
printf '%-36s %8.0f %10s   %s\n' "one replica, directly" "$direct" 1.00x "${runs[direct]}"
for n in 1 2 3; do
  m=$(echo "${runs[lb$n]}" | median)
  printf '%-36s %8.0f %9.2fx   %s\n' "$n replica(s) through nginx" "$m" "$(python3 -c "print($m / $direct)")" "${runs[lb$n]}"
done
