#!/usr/bin/env bash
# What access control costs (issue #18): /asyncwait throughput (64 connections, closed loop)
# and 4 x 20 MiB multipart uploads in parallel, against the same binary with auth off (loopback,
# no tokens) and on (a token, a link key, and auth.open_bench = false, so every /asyncwait
# checks its bearer token too), by the same client sending the same Authorization header to
# both; repetitions interleaved, each on a fresh store; medians and the on/off ratios. Beside
# throughput, which this shared machine makes noisy, the service's own CPU time per /asyncwait
# request (utime + stime from /proc over the load run): what the check costs, directly.
#
#   scripts/bench-auth.sh        # REPS=5, DURATION=5s, fsync off
#
# Stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
DURATION=${DURATION:-5s}
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup bench-auth
cargo build --release -q -p upload-http -p bench-client
TOKEN=fu_bench_token_for_this_run_only
DIGEST=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)

start_service() { # MODE: off | on; sets SVC and URL once ready
  rm -rf "$WORK/data"
  local port auth=()
  port=$(free_port)
  URL=http://127.0.0.1:$port
  [[ $1 == on ]] && auth=(UPLOAD__AUTH__TOKENS="bench:admin:$DIGEST"
    UPLOAD__AUTH__LINK_KEY=bench-link-key-0123456789abcdef0123456789 UPLOAD__AUTH__OPEN_BENCH=false)
  env UPLOAD__SERVER__PORT="$port" UPLOAD__SERVER__WORKERS=2 RUST_LOG=warn \
    UPLOAD__STORAGE__ROOT="$WORK/data" UPLOAD__STORAGE__FSYNC=false "${auth[@]}" \
    target/release/upload-http >>"$WORK/service.log" 2>&1 &
  SVC=$!
  PIDS+=("$SVC")
  for _ in $(seq 200); do curl -fs -o /dev/null "$URL/readyz" && return; sleep 0.05; done
  cat "$WORK/service.log" >&2; stop "$SVC"; exit 1
}

field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"] > 0, r; print(round(r[sys.argv[2]], 1))' "$@"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

declare -A RPS MBS CPU
for rep in $(seq "$REPS"); do
  for mode in off on; do
    start_service "$mode"
    sync
    before=$(cpu_ticks "$SVC")
    target/release/bench-client --token "$TOKEN" --json "$WORK/load.json" \
      load "$URL/asyncwait?duration=0" --duration "$DURATION" -c 64 >/dev/null
    ticks=$(( $(cpu_ticks "$SVC") - before ))
    target/release/bench-client --token "$TOKEN" --json "$WORK/upload.json" \
      upload "$URL/files" --files 4 --size 20MiB --mode parallel >/dev/null
    stop "$SVC"
    rps=$(field "$WORK/load.json" rps); mbs=$(field "$WORK/upload.json" mb_per_s)
    requests=$(field "$WORK/load.json" requests)
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN {printf "%.2f", t / hz / n * 1e6}')
    log "rep $rep auth $mode: /asyncwait $rps req/s, $cpu us CPU each; upload $mbs MB/s"
    RPS[$mode]+="$rps "; MBS[$mode]+="$mbs "; CPU[$mode]+="$cpu "
  done
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
printf 'auth off vs on, medians of %s\n' "$REPS"
for mode in off on; do
  printf '  auth %-3s  /asyncwait %9.0f req/s [%s], %s us CPU/request [%s]\n' "$mode" \
    "$(med "${RPS[$mode]}")" "${RPS[$mode]% }" "$(med "${CPU[$mode]}")" "${CPU[$mode]% }"
  printf '            upload 4x20MiB %7.1f MB/s [%s]\n' "$(med "${MBS[$mode]}")" "${MBS[$mode]% }"
done
awk -v a="$(med "${RPS[on]}")" -v b="$(med "${RPS[off]}")" -v c="$(med "${MBS[on]}")" \
  -v d="$(med "${MBS[off]}")" -v e="$(med "${CPU[on]}")" -v f="$(med "${CPU[off]}")" \
  'BEGIN {printf "  on / off: /asyncwait %.3fx (CPU per request %.3fx), upload %.3fx\n", a / b, e / f, c / d}'
