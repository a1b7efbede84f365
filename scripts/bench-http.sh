#!/usr/bin/env bash
# The service's benchmarks (issue #4), each next to a reference measured in the same run,
# all on 127.0.0.1, every loop bounded. Prints one table; medians of REPS runs.
#
#   scripts/bench-http.sh            # REPS=3 by default; needs nginx, wrk, python3
#   BEFORE=REV scripts/bench-http.sh # adds the upload rows of the service built at git revision REV
#
# Installs what is missing (nginx-light and wrk from apt, FastAPI/uvicorn into a venv under
# target/), and stops only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
ROOT=$PWD
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup bench-http

# --- tools -------------------------------------------------------------------------------
if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  log "installing nginx-light and wrk"
  apt-get update -qq && apt-get install -y -qq nginx-light wrk >/dev/null
fi
VENV=$ROOT/target/bench-venv
if ! "$VENV/bin/python" -c 'import aiohttp, fastapi, multipart, uvicorn' 2>/dev/null; then
  log "installing FastAPI, uvicorn and aiohttp into $VENV"
  python3 -m venv "$VENV" && "$VENV/bin/pip" install -q fastapi uvicorn python-multipart aiohttp
fi
cargo build --release -q -p upload-http --bin upload-http --example bare
SERVICE=$ROOT/target/release/upload-http
[[ -n ${BEFORE:-} ]] && BEFORE_BIN=$(build_before "$BEFORE")

# --- helpers -----------------------------------------------------------------------------
wait_http() { # URL: up to 10 s
  for _ in $(seq 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done
  log "not up: $1"; return 1
}
# start_service NAME PORT [VAR=VALUE ...]: the service with its own data dir; sets SVC_PID
start_service() {
  local name=$1 port=$2 bin=${SERVICE_BIN:-$SERVICE}; shift 2
  env UPLOAD__SERVER__PORT="$port" UPLOAD__STORAGE__ROOT="$WORK/data-$name" UPLOAD__SERVER__WORKERS=2 \
    UPLOAD__LIMITS__MAX_FILE_SIZE=3GiB UPLOAD__LIMITS__MAX_REQUEST_SIZE=3GiB "$@" \
    "$bin" >"$WORK/$name.log" 2>&1 &
  SVC_PID=$!
  PIDS+=("$SVC_PID")
  wait_http "http://127.0.0.1:$port/healthz"
}

# upload_batch MODE URL: 4 files as multipart uploads, all at once or one after another; prints
# seconds. Every server gets the same command, so the same bodies. Always called as $(...), so
# `wait` sees only the curls it started.
FILES=()
upload_batch() {
  local mode=$1 url=$2 start
  sync # every batch starts with no dirty pages left by the one before: repetitions compare
  start=$(now)
  for f in "${FILES[@]}"; do
    cmd=(curl -fs -o /dev/null -F "file=@$f" "$url")
    if [[ $mode == parallel ]]; then "${cmd[@]}" & else "${cmd[@]}"; fi
  done
  wait # only this subshell's curls: the servers are the parent's children
  awk -v s="$start" -v e="$(now)" 'BEGIN {printf "%.4f\n", e - s}'
}

# cpu_ms PID: CPU time so far of PID and its child processes (nginx's workers), in ms.
cpu_ms() {
  local ticks=0 p
  for p in "$1" $(pgrep -P "$1"); do ticks=$((ticks + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
  echo $((ticks * 1000 / $(getconf CLK_TCK)))
}
# hash_stored MODE FILE...: seconds to SHA-256 the files, all at once or one after another,
# as anything storing uploads with nginx would still have to. OpenSSL, as it uses the CPU's SHA
# instructions (coreutils' sha256sum runs at a quarter of its speed here). Called as $(...), like upload_batch.
hash_stored() {
  local mode=$1 start; shift
  start=$(now)
  for f in "$@"; do
    cmd=(openssl dgst -sha256 -out /dev/null "$f")
    if [[ $mode == parallel ]]; then "${cmd[@]}" & else "${cmd[@]}"; fi
  done
  wait
  awk -v s="$start" -v e="$(now)" 'BEGIN {printf "%.4f\n", e - s}'
}

# --- 1. four 20 MB uploads -----------------------------------------------------------------
log "generating 4 x 20 MB"
for i in 1 2 3 4; do head -c 20000000 /dev/urandom >"$WORK/file$i.bin"; FILES+=("$WORK/file$i.bin"); done
cat "${FILES[@]}" >"$WORK/all.bin"

NGINX_PORT=$(free_port) BACKEND_PORT=$(free_port)
mkdir -p "$WORK/nginx-body"
cat >"$WORK/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-body;
  client_max_body_size 100m;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /upload {
      client_body_in_file_only on;
      client_body_buffer_size 1m;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-File \$request_body_file;
      proxy_pass http://127.0.0.1:$BACKEND_PORT/done;
    }
  }
  server { listen 127.0.0.1:$BACKEND_PORT; location /done { return 201; } }
}
EOF
nginx -c "$WORK/nginx.conf" & PIDS+=($!)
NGINX_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break; sleep 0.05; done

# The Python peers of the original reports, on one process each as they were run: the FastAPI
# app (reads each file whole, then writes it) and aiohttp (streams the parts to disk).
P_FASTAPI=$(free_port) P_AIOHTTP=$(free_port)
mkdir -p "$WORK/fastapi-files" "$WORK/aiohttp-files"
(cd bench/reference && UPLOAD_DIR=$WORK/fastapi-files exec "$VENV/bin/uvicorn" fastapi_app:app \
  --port "$P_FASTAPI" --log-level warning) >"$WORK/fastapi.log" 2>&1 & PIDS+=($!)
(cd bench/reference && UPLOAD_DIR=$WORK/aiohttp-files exec "$VENV/bin/python" aiohttp_app.py "$P_AIOHTTP") \
  >"$WORK/aiohttp.log" 2>&1 & PIDS+=($!)
AIOHTTP_PID=$!
wait_http "http://127.0.0.1:$P_FASTAPI/asyncwait?duration=0"
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$P_AIOHTTP/" && break; sleep 0.05; done

P_NOSYNC=$(free_port) P_SYNC=$(free_port)
start_service nosync "$P_NOSYNC" UPLOAD__STORAGE__FSYNC=false RUST_LOG=warn; NOSYNC_PID=$SVC_PID
start_service sync "$P_SYNC" RUST_LOG=warn; SYNC_PID=$SVC_PID
P_BEFORE=0 BEFORE_PID=0
if [[ -n ${BEFORE:-} ]]; then
  P_BEFORE=$(free_port)
  SERVICE_BIN=$BEFORE_BIN start_service before "$P_BEFORE" \
    UPLOAD__STORAGE__FSYNC=false RUST_LOG=warn
  BEFORE_PID=$SVC_PID
fi

declare -A T
for rep in $(seq "$REPS"); do
  log "uploads, run $rep/$REPS"
  for mode in parallel serial; do
    cpu=$(cpu_ms "$NGINX_PID")
    took=$(upload_batch $mode "http://127.0.0.1:$NGINX_PORT/upload")
    T[nginx_$mode]+="$took "
    T[cpu_nginx_$mode]+="$(($(cpu_ms "$NGINX_PID") - cpu)) "
    hashed=$(hash_stored $mode "$WORK"/nginx-body/*)
    T[sha_$mode]+="$hashed "
    T[hashed_$mode]+="$(awk -v a="$took" -v b="$hashed" 'BEGIN {print a + b}') "
    rm -f "$WORK"/nginx-body/*
    cpu=$(cpu_ms "$NOSYNC_PID")
    T[nosync_$mode]+="$(upload_batch $mode "http://127.0.0.1:$P_NOSYNC/files") "
    T[cpu_nosync_$mode]+="$(($(cpu_ms "$NOSYNC_PID") - cpu)) "
    T[sync_$mode]+="$(upload_batch $mode "http://127.0.0.1:$P_SYNC/files") "
    if ((BEFORE_PID)); then
      cpu=$(cpu_ms "$BEFORE_PID")
      T[before_$mode]+="$(upload_batch $mode "http://127.0.0.1:$P_BEFORE/files") "
      T[cpu_before_$mode]+="$(($(cpu_ms "$BEFORE_PID") - cpu)) "
    fi
    cpu=$(cpu_ms "$AIOHTTP_PID")
    T[aiohttp_$mode]+="$(upload_batch $mode "http://127.0.0.1:$P_AIOHTTP/files") "
    T[cpu_aiohttp_$mode]+="$(($(cpu_ms "$AIOHTTP_PID") - cpu)) "
    T[fastapi_$mode]+="$(upload_batch $mode "http://127.0.0.1:$P_FASTAPI/") "
    rm -f "$WORK"/aiohttp-files/* "$WORK"/fastapi-files/*
  done
  start=$(now)
  dd if="$WORK/all.bin" of="$WORK/dd.out" bs=1M conv=fdatasync status=none
  T[dd]+="$(awk -v s="$start" -v e="$(now)" 'BEGIN {printf "%.4f\n", e - s}') "
  rm -f "$WORK/dd.out" "$WORK"/data-*/objects/* -r
done
rate() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median | awk '{printf "%.0f", 80 / $1}'; } # MB/s

echo
echo "4 x 20 MB multipart uploads with curl (MB/s, median of $REPS)"
printf '%-44s %10s %10s\n' "" parallel serial
for row in "nginx client_body_in_file_only (no parse):nginx" "nginx, then openssl sha256 of stored files:hashed" \
  "aiohttp, parts streamed to disk (no hash):aiohttp" "original FastAPI app (file read whole):fastapi" \
  "service, fsync = false:nosync" "service, fsync = true (default):sync" \
  ${BEFORE:+"service at $BEFORE, fsync = false:before"}; do
  printf '%-44s %10s %10s\n' "${row%%:*}" "$(rate "${row##*:}_parallel")" "$(rate "${row##*:}_serial")"
done
printf '%-44s %10s\n' "dd conv=fdatasync, same 80 MB" "$(rate dd)"
awk -v a="$(rate nosync_parallel)" -v b="$(rate nginx_parallel)" -v c="$(rate nosync_serial)" -v d="$(rate nginx_serial)" \
  'BEGIN {printf "service (fsync off) / nginx: %.2fx parallel, %.2fx serial\n", a / b, c / d}'
for ref in "hashed:nginx + openssl sha256" "aiohttp:aiohttp" "fastapi:FastAPI"; do
  awk -v a="$(rate nosync_parallel)" -v b="$(rate "${ref%%:*}_parallel")" -v c="$(rate nosync_serial)" \
    -v d="$(rate "${ref%%:*}_serial")" -v name="${ref#*:}" \
    'BEGIN {printf "service (fsync off) / %s: %.2fx parallel, %.2fx serial\n", name, a / b, c / d}'
done
med_ms() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median; }
echo "server CPU per 80 MB (ms): nginx $(med_ms cpu_nginx_parallel) parallel, $(med_ms cpu_nginx_serial) serial;" \
  "aiohttp $(med_ms cpu_aiohttp_parallel) parallel, $(med_ms cpu_aiohttp_serial) serial;" \
  "service (fsync off) $(med_ms cpu_nosync_parallel) parallel, $(med_ms cpu_nosync_serial) serial" \
  ${BEFORE:+"; service at $BEFORE (fsync off) $(med_ms cpu_before_parallel) parallel, $(med_ms cpu_before_serial) serial"}
awk -v a="$(rate sync_parallel)" -v b="$(rate dd)" -v c="$(rate sync_serial)" \
  'BEGIN {printf "service (fsync on) / dd fdatasync: %.2fx parallel, %.2fx serial\n", a / b, c / b}'

# --- 1b. the same four files as raw PUT bodies (curl -T) -------------------------------------------
# raw_batch MODE URL_BASE: each file PUT to URL_BASE/fN, all at once or in turn; prints seconds.
raw_batch() {
  local mode=$1 base=$2 start i=0
  sync
  start=$(now)
  for f in "${FILES[@]}"; do
    i=$((i + 1))
    cmd=(curl -fs -o /dev/null -T "$f" "$base/f$i")
    if [[ $mode == parallel ]]; then "${cmd[@]}" & else "${cmd[@]}"; fi
  done
  wait
  awk -v s="$start" -v e="$(now)" 'BEGIN {printf "%.4f\n", e - s}'
}
declare -A W
for rep in $(seq "$REPS"); do
  log "raw PUT uploads, run $rep/$REPS"
  for mode in parallel serial; do
    for srv in "nginx $NGINX_PID http://127.0.0.1:$NGINX_PORT/upload" \
      "aiohttp $AIOHTTP_PID http://127.0.0.1:$P_AIOHTTP/files" \
      "nosync $NOSYNC_PID http://127.0.0.1:$P_NOSYNC/files" "sync $SYNC_PID http://127.0.0.1:$P_SYNC/files" \
      ${BEFORE:+"before $BEFORE_PID http://127.0.0.1:$P_BEFORE/files"}; do
      read -r name pid url <<<"$srv"
      cpu=$(cpu_ms "$pid")
      W[${name}_$mode]+="$(raw_batch $mode "$url") "
      W[cpu_${name}_$mode]+="$(($(cpu_ms "$pid") - cpu)) "
      rm -rf "$WORK"/nginx-body/* "$WORK"/aiohttp-files/* "$WORK"/data-*/objects/*
    done
  done
done
wrate() { echo "${W[$1]}" | tr ' ' '\n' | grep . | median | awk '{printf "%.0f", 80 / $1}'; } # MB/s
wcpu() { echo "${W[cpu_$1]}" | tr ' ' '\n' | grep . | median | awk '{printf "%.2f", $1 / 80}'; } # ms/MB
echo
echo "4 x 20 MB raw PUT uploads with curl -T (MB/s and server CPU ms per MB, median of $REPS)"
printf '%-44s %10s %10s %12s %12s\n' "" parallel serial "ms/MB par" "ms/MB ser"
for row in "nginx client_body_in_file_only (no hash):nginx" "aiohttp iter_chunked to disk (no hash):aiohttp" \
  "service, fsync = false:nosync" "service, fsync = true (default):sync" \
  ${BEFORE:+"service at $BEFORE, fsync = false:before"}; do
  n=${row##*:}
  printf '%-44s %10s %10s %12s %12s\n' "${row%%:*}" "$(wrate "${n}_parallel")" "$(wrate "${n}_serial")" \
    "$(wcpu "${n}_parallel")" "$(wcpu "${n}_serial")"
done
for ref in nginx aiohttp; do
  awk -v a="$(wrate nosync_parallel)" -v b="$(wrate ${ref}_parallel)" -v c="$(wrate nosync_serial)" \
    -v d="$(wrate ${ref}_serial)" -v name="$ref" \
    'BEGIN {printf "raw: service (fsync off) / %s: %.2fx parallel, %.2fx serial\n", name, a / b, c / d}'
done
awk -v a="$(wrate sync_parallel)" -v b="$(wrate nosync_parallel)" -v c="$(wrate sync_serial)" -v d="$(wrate nosync_serial)" \
  'BEGIN {printf "raw: service fsync on / off: %.2fx parallel, %.2fx serial\n", a / b, c / d}'
awk -v a="$(rate sync_parallel)" -v b="$(rate nosync_parallel)" -v c="$(rate sync_serial)" -v d="$(rate nosync_serial)" \
  'BEGIN {printf "multipart: service fsync on / off: %.2fx parallel, %.2fx serial\n", a / b, c / d}'
if [[ -n ${BEFORE:-} ]]; then
  awk -v a="$(rate nosync_parallel)" -v b="$(rate before_parallel)" -v c="$(rate nosync_serial)" -v d="$(rate before_serial)" \
    -v e="$(wrate nosync_parallel)" -v f="$(wrate before_parallel)" -v g="$(wrate nosync_serial)" -v h="$(wrate before_serial)" \
    'BEGIN {printf "service now / at BEFORE (fsync off): multipart %.2fx parallel, %.2fx serial; raw %.2fx parallel, %.2fx serial\n", a / b, c / d, e / f, g / h}'
fi
sha_ms=$(echo "${T[sha_serial]}" | tr ' ' '\n' | grep . | median | awk '{printf "%.2f", $1 * 1000 / 80}')
echo "SHA-256 of the stored files with openssl, one at a time: $sha_ms ms/MB (wall time of one core)"
stop "$NGINX_PID"; stop "$AIOHTTP_PID"; ((BEFORE_PID)) && stop "$BEFORE_PID"

# --- 2. memory while receiving 2 GiB ---------------------------------------------------------
log "2 GiB upload, sampling RSS"
head -c 1048576 /dev/urandom >"$WORK/block"
for _ in $(seq 2048); do cat "$WORK/block"; done >"$WORK/big.bin"
rm -f "${FILES[@]}" "$WORK/all.bin"
idle=$(awk '/VmRSS/ {print $2}' "/proc/$SYNC_PID/status")
( peak=0; while kill -0 "$SYNC_PID" 2>/dev/null && [[ ! -e $WORK/rss.stop ]]; do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$SYNC_PID/status"); ((r > peak)) && peak=$r; echo "$peak" >"$WORK/rss.peak"; sleep 0.02
  done ) &
curl -fs -o /dev/null -F "file=@$WORK/big.bin" "http://127.0.0.1:$P_SYNC/files"
touch "$WORK/rss.stop"; sleep 0.1
peak=$(cat "$WORK/rss.peak")
echo
echo "server RSS while receiving one 2 GiB multipart upload (fsync on): idle $((idle / 1024)) MiB, peak $((peak / 1024)) MiB, $(((peak - idle) / 1024)) MiB above idle"
rm -f "$WORK/big.bin"
stop "$SYNC_PID"; stop "$NOSYNC_PID"

# --- 3. /wait with 1000 connections vs the original FastAPI server -------------------------------
P_SVC=$(free_port) P_QUIET=$(free_port) P_BARE=$(free_port)
start_service svc "$P_SVC"
start_service quiet "$P_QUIET" RUST_LOG=info,access=off
"$ROOT/target/release/examples/bare" "$P_BARE" 2 & PIDS+=($!)
wait_http "http://127.0.0.1:$P_BARE/asyncwait"

wrk_rate() { # URL CONNECTIONS SECONDS -> req/s
  wrk -t2 -c"$2" -d"$3"s --timeout 10s "$1" 2>/dev/null | awk '/Requests\/sec/ {print $2}'
}
declare -A R
for rep in $(seq "$REPS"); do
  log "/wait and /asyncwait, run $rep/$REPS"
  R[wait_svc]+="$(wrk_rate "http://127.0.0.1:$P_SVC/wait?duration=0.05" 1000 10) "
  R[wait_fastapi]+="$(wrk_rate "http://127.0.0.1:$P_FASTAPI/wait?duration=0.05" 1000 10) "
  R[async_bare]+="$(wrk_rate "http://127.0.0.1:$P_BARE/asyncwait" 64 10) "
  for svc in svc quiet; do
    port=$([[ $svc == svc ]] && echo "$P_SVC" || echo "$P_QUIET")
    R[async_$svc]+="$(wrk_rate "http://127.0.0.1:$port/asyncwait?duration=0" 64 10) "
    # fib(42) back-to-back alongside, for as long as wrk runs (bounded: 11 s).
    ( end=$((SECONDS + 11)); while ((SECONDS < end)); do curl -s -o /dev/null -m 30 "http://127.0.0.1:$port/fib/42"; done ) &
    loader=$!
    R[async_${svc}_fib]+="$(wrk_rate "http://127.0.0.1:$port/asyncwait?duration=0" 64 10) "
    wait "$loader"
  done
done
med() { echo "${R[$1]}" | tr ' ' '\n' | grep . | median; }
echo
echo "wrk -t2, 10 s, req/s (median of $REPS)"
printf '%-58s %10.0f\n' "/wait?duration=0.05, 1000 conns: original FastAPI (uvicorn)" "$(med wait_fastapi)"
printf '%-58s %10.0f\n' "/wait?duration=0.05, 1000 conns: service" "$(med wait_svc)"
printf '%-58s %10.0f\n' "/asyncwait, 64 conns: bare actix-web handler" "$(med async_bare)"
printf '%-58s %10.0f\n' "/asyncwait?duration=0, 64 conns: service (access log on)" "$(med async_svc)"
printf '%-58s %10.0f\n' "  ... with fib(42) back-to-back alongside" "$(med async_svc_fib)"
printf '%-58s %10.0f\n' "/asyncwait?duration=0, 64 conns: service, access=off" "$(med async_quiet)"
printf '%-58s %10.0f\n' "  ... with fib(42) back-to-back alongside" "$(med async_quiet_fib)"
awk -v a="$(med wait_svc)" -v b="$(med wait_fastapi)" 'BEGIN {printf "service / FastAPI on /wait: %.1fx\n", a / b}'
for svc in svc quiet; do
  awk -v name="$svc" -v c="$(med async_$svc)" -v d="$(med async_bare)" -v e="$(med async_${svc}_fib)" \
    'BEGIN {printf "%s: / bare actix %.2fx; with fib(42) / without %.2fx\n", name == "svc" ? "access log on " : "access log off", c / d, e / c}'
done
for port in "$P_SVC" "$P_QUIET"; do
  echo "fib(42) jobs completed alongside (port $port): $(curl -s "http://127.0.0.1:$port/metrics" | awk '/outcome="completed"/ {print $2}')"
done
