#!/usr/bin/env bash
# Resumable uploads against one-shot ones (issue #17): one 2 GiB file sent as a tus upload in
# 8 MiB PATCHes and as one raw PUT, by the same client (bench-client) to the same service in
# the same run, repetitions interleaved, each on a fresh store after a `sync`; medians, the
# ratio, and the service's peak RSS above idle during each kind of upload. Local disk, or a
# single-node Garage on loopback with BACKEND=s3 (part size 8 MiB, 4 parts in flight).
#
#   scripts/bench-tus.sh           # REPS=5, SIZE=2GiB, CHUNK=8MiB, FSYNC=true, BACKEND=local
#   BACKEND=s3 scripts/bench-tus.sh
#   BEFORE=REV scripts/bench-tus.sh  # adds the tus upload to the service built at git revision REV
#
# Stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
SIZE=${SIZE:-2GiB}
CHUNK=${CHUNK:-8MiB}
FSYNC=${FSYNC:-true}
BACKEND=${BACKEND:-local}
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup bench-tus
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [[ $BACKEND == s3 ]]; then
  export GARAGE_S3_PORT=3970 GARAGE_RPC_PORT=3971 GARAGE_ADMIN_PORT=3973
  eval "$(scripts/garage-dev.sh start "$WORK/garage")"
  trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true
        scripts/garage-dev.sh purge "$WORK/garage" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
fi

cargo build --release -q -p upload-http -p bench-client
declare -A BIN=([put]=target/release/upload-http [tus]=target/release/upload-http)
KINDS=(put tus)
if [[ -n ${BEFORE:-} ]]; then
  BIN[tus-before]=$(build_before "$BEFORE")
  KINDS+=(tus-before)
fi
SVC=

RUN=0
start_service() { # BINARY: a fresh store and port each time; sets SVC and URL once ready
  rm -rf "$WORK/data"
  local port; port=$(free_port)
  URL=http://127.0.0.1:$port
  RUN=$((RUN + 1))
  local storage=(UPLOAD__STORAGE__ROOT="$WORK/data" UPLOAD__STORAGE__FSYNC=$FSYNC)
  [[ $BACKEND == s3 ]] && storage=(UPLOAD__STORAGE__TYPE=s3 UPLOAD__STORAGE__BUCKET="$S3_BUCKET"
    UPLOAD__STORAGE__PREFIX="run$RUN")
  env UPLOAD__SERVER__PORT="$port" UPLOAD__SERVER__WORKERS=2 RUST_LOG=warn "${storage[@]}" \
    UPLOAD__LIMITS__MAX_FILE_SIZE=4GiB UPLOAD__LIMITS__MAX_REQUEST_SIZE=4GiB \
    "$1" >>"$WORK/service.log" 2>&1 &
  SVC=$!
  PIDS+=("$SVC")
  for _ in $(seq 200); do curl -fs -o /dev/null "$URL/readyz" && return; sleep 0.05; done
  cat "$WORK/service.log" >&2; stop "$SVC"; exit 1
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

# one KIND: a single upload with bench-client; prints "MB/s peak-RSS-above-idle-MiB".
one() {
  local kind=$1 args idle peak json=$WORK/report.json
  start_service "${BIN[$kind]}"
  case $kind in
    put) args=("$URL/files" --raw) ;;
    tus*) args=("$URL/uploads/" --tus "$CHUNK") ;;
  esac
  sync
  idle=$(rss_kib "$SVC")
  target/release/bench-client upload "${args[@]}" --files 1 --size "$SIZE" --mode serial \
    --json "$json" >/dev/null &
  local client=$!
  peak=$idle
  while kill -0 "$client" 2>/dev/null; do
    local now_kib; now_kib=$(rss_kib "$SVC"); (( now_kib > peak )) && peak=$now_kib
    sleep 0.05
  done
  wait "$client"
  python3 - "$json" "$idle" "$peak" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["ok"] == 1 and r["verified"] == 1, r
print(f'{r["mb_per_s"]:.1f} {(int(sys.argv[3]) - int(sys.argv[2])) / 1024:.1f}')
PY
  stop "$SVC"
}

declare -A RATE RSS
for rep in $(seq "$REPS"); do
  for kind in "${KINDS[@]}"; do
    read -r rate rss < <(one "$kind")
    log "rep $rep $kind: $rate MB/s, RSS +$rss MiB"
    RATE[$kind]+="$rate "
    RSS[$kind]+="$rss "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
max() { tr ' ' '\n' <<<"$1" | grep . | sort -g | tail -n1; }
put=$(med "${RATE[put]}"); tus=$(med "${RATE[tus]}")
where=$BACKEND; [[ $BACKEND == local ]] && where="local disk, fsync=$FSYNC"
printf '%s upload, %s, medians of %s (samples in MB/s)\n' "$SIZE" "$where" "$REPS"
printf '  one raw PUT            %8s MB/s  [%s]  peak RSS +%s MiB\n' "$put" "${RATE[put]% }" "$(max "${RSS[put]}")"
printf '  tus, %s PATCHes     %8s MB/s  [%s]  peak RSS +%s MiB\n' "$CHUNK" "$tus" "${RATE[tus]% }" "$(max "${RSS[tus]}")"
awk -v a="$tus" -v b="$put" 'BEGIN {printf "  tus / one-shot: %.2fx\n", a / b}'
if [[ -n ${BEFORE:-} ]]; then
  before=$(med "${RATE[tus-before]}")
  printf '  tus at %s  %8s MB/s  [%s]  peak RSS +%s MiB\n' "$BEFORE" "$before" "${RATE[tus-before]% }" "$(max "${RSS[tus-before]}")"
  awk -v a="$tus" -v b="$before" 'BEGIN {printf "  tus now / before: %.2fx\n", a / b}'
fi
