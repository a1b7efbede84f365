#!/usr/bin/env bash
# The reliability suite at full length, one table at the end: case, iterations, expected,
# observed. Everything on 127.0.0.1 or file systems it mounts itself; every loop bounded.
#
#   scripts/reliability.sh            # crash: 60 kills; soak: 60 s
#   SHORT=1 scripts/reliability.sh    # what .ci/run runs: the soak for 15 s (scripts/test.sh
#                                     # has run the crash test with 8 kills and the full disks)
#
# - crash: the binary SIGKILLed at random points during multipart, raw, chunked and tus
#   uploads and deletes, fsync on, restarted on the same root (tests/it/crash.rs);
# - full disk: a 64 MiB loop-mounted ext4 and a 64 MiB tmpfs (tests/it/full_disk.rs; root only);
# - soak: waves of 1000 concurrent 4 KiB uploads, 300 trickled bodies and 200 /wait sleeps
#   against the release build (scripts/lib/soak.py).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup reliability
if [[ -n "${SHORT:-}" ]]; then KILLS=0 SOAK=15; else KILLS=${KILLS:-60} SOAK=${SOAK:-60}; fi
ROWS=()
row() { ROWS+=("$(printf '| %s | %s | %s | %s |' "$@")"); }

log "== crash consistency: $KILLS kills"
if ((KILLS == 0)); then
  row "SIGKILL during uploads and deletes" - "(scripts/test.sh ran it with 8 kills)" "-"
elif CRASH_ITERATIONS=$KILLS cargo nextest run -p upload-http --locked --no-capture \
  -E 'test(crash::)' >"$WORK/crash.log" 2>&1; then
  acked=$(grep -o 'kill [0-9]*: [0-9]* files acknowledged, [0-9]* deleted, [0-9]* tus appends' "$WORK/crash.log" | tail -n1)
  open=$(grep -o 'slowest open after a kill: .*' "$WORK/crash.log" | sed 's/.*: //')
  row "SIGKILL during uploads and deletes, fsync on" "$KILLS" \
    "every 201/204 kept, nothing partial listed, tmp/ swept, opens < 10 s" \
    "pass: ${acked#kill * }; slowest open $open"
else
  tail -n 40 "$WORK/crash.log" >&2
  row "SIGKILL during uploads and deletes, fsync on" "$KILLS" "as above" "FAIL (log above)"
fi

log "== full disk"
if [[ -n "${SHORT:-}" ]]; then
  row "full disk" - "(scripts/test.sh ran it)" "-"
elif cargo nextest run -p upload-http --locked --no-capture -E 'test(full_disk::)' \
  >"$WORK/disk.log" 2>&1; then
  if grep -q 'skipped:' "$WORK/disk.log"; then
    row "full disk (ext4 64 MiB, tmpfs 64 MiB)" 2 "507 storage_full (raw, multipart, tus append), nothing partial, tus offset kept, reads and deletes work, uploads recover" "skipped: needs root"
  else
    row "full disk (ext4 64 MiB, tmpfs 64 MiB)" 2 "507 storage_full (raw, multipart, tus append), nothing partial, tus offset kept, reads and deletes work, uploads recover" "pass on both"
  fi
else
  tail -n 40 "$WORK/disk.log" >&2
  row "full disk (ext4 64 MiB, tmpfs 64 MiB)" 2 "as above" "FAIL (log above)"
fi

log "== soak: $SOAK s"
cargo build --release --locked -q -p upload-http -p bench-client
PORT=$(free_port)
env UPLOAD__SERVER__PORT="$PORT" UPLOAD__STORAGE__ROOT="$WORK/data" UPLOAD__SERVER__READ_TIMEOUT=5s \
  RUST_LOG=warn target/release/upload-http >"$WORK/service.log" 2>&1 &
PID=$!
PIDS+=("$PID")
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done
ulimit -n 8192
python3 scripts/lib/soak.py "$PORT" "$PID" "$SOAK" >"$WORK/soak.json"
read -r waves acked failed corrupt cut trickles w503 w200 hp99 sp99 fd0 fdp fd1 rss0 rssp rss1 < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(*[r[k] for k in ["waves", "uploads_acked", "uploads_failed", "corrupt", "trickles_cut", "trickles",
  "waits_503", "waits_200", "healthz_p99_ms", "small_upload_p99_ms", "fds_before", "fds_peak", "fds_after",
  "rss_mib_before", "rss_mib_peak", "rss_mib_after"]])' "$WORK/soak.json")
row "soak: 1000 concurrent 4 KiB uploads per wave" "$waves waves" "all acknowledged uploads intact" \
  "$acked acknowledged, $failed refused, $corrupt corrupt"
row "soak: 300 bodies trickled at 0.5 B/s" 300 "all cut off (408), read_timeout 5 s" "$cut of $trickles cut off with 408"
row "soak: 200 /wait sleeps held open" 200 "sleep on their own threads; nothing waits behind them" "$w200 slept, $w503 got 503"
row "soak: p99 latency under load" "-" "/healthz < 5 s, a 1 KiB upload < 10 s (2 cores shared with the client)" \
  "healthz ${hp99} ms, upload ${sp99} ms"
row "soak: open files" "-" "back to the start once clients leave" "$fd0 before, $fdp peak, $fd1 after"
row "soak: RSS (MiB)" "-" "bounded" "$rss0 before, $rssp peak, $rss1 after"
status=0
((corrupt == 0 && cut == trickles && fd1 <= fd0 + 8)) || status=1
python3 -c 'import sys; sys.exit(not (float(sys.argv[1]) < 5000 and float(sys.argv[2]) < 10000))' "$hp99" "$sp99" || status=1

printf '\n| case | iterations | expected | observed |\n| --- | --- | --- | --- |\n'
printf '%s\n' "${ROWS[@]}"
if grep -q FAIL <<<"${ROWS[*]}"; then status=1; fi
exit "$status"
