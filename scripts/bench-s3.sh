#!/usr/bin/env bash
# The S3 backend's benchmark (issue #6): uploads through the service into a single-node Garage,
# next to a direct upload of the same files to the same Garage with boto3, in the same run;
# and the service's memory while it stores 1 GiB. Medians of REPS runs; all on 127.0.0.1.
#
#   scripts/bench-s3.sh            # REPS=3 by default; needs python3 and garage (see test.sh)
#
# Installs boto3 into the venv under target/ if missing; stops only what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
ROOT=$PWD
WORK=$(mktemp -d /tmp/bench-s3.XXXXXX)
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export GARAGE_S3_PORT=3960 GARAGE_RPC_PORT=3961 GARAGE_ADMIN_PORT=3963
GARAGE_DIR=$WORK/garage
SVC_PID=
cleanup() {
  [[ -n $SVC_PID ]] && { kill "$SVC_PID" 2>/dev/null || true; wait "$SVC_PID" 2>/dev/null || true; }
  scripts/garage-dev.sh purge "$GARAGE_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh

VENV=$ROOT/target/bench-venv
[[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import boto3' 2>/dev/null || "$VENV/bin/pip" install -q boto3
cargo build --release -q -p upload-http --bin upload-http
eval "$(scripts/garage-dev.sh start "$GARAGE_DIR")"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_service() { # sets SVC_PID, once the service is ready
  UPLOAD__SERVER__PORT=$PORT UPLOAD__SERVER__WORKERS=2 RUST_LOG=warn \
    UPLOAD__STORAGE__TYPE=s3 UPLOAD__STORAGE__BUCKET=$S3_BUCKET UPLOAD__STORAGE__PREFIX=service \
    UPLOAD__LIMITS__MAX_FILE_SIZE=2GiB UPLOAD__LIMITS__MAX_REQUEST_SIZE=2GiB \
    target/release/upload-http >>"$WORK/service.log" 2>&1 &
  SVC_PID=$!
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz" && return; sleep 0.05; done
  cat "$WORK/service.log"; exit 1
}
start_service

log "generating 4 x 20 MiB and 1 x 1 GiB"
SMALL=()
for i in 1 2 3 4; do head -c $((20 << 20)) /dev/urandom >"$WORK/f$i.bin"; SMALL+=("$WORK/f$i.bin"); done
head -c $((1 << 30)) /dev/urandom >"$WORK/big.bin"

# service MODE FILE...: PUT each file (streamed by curl -T), all at once or in turn; seconds.
service() {
  local mode=$1 start; shift
  start=$(now)
  for f in "$@"; do
    cmd=(curl -fs -o /dev/null -T "$f" "http://127.0.0.1:$PORT/files/$(basename "$f")")
    if [[ $mode == parallel ]]; then "${cmd[@]}" & else "${cmd[@]}"; fi
  done
  wait
  awk -v s="$start" -v e="$(now)" 'BEGIN {printf "%.4f\n", e - s}'
}

# direct MODE FILE...: the same with boto3's managed transfer (8 MiB parts, 4 in flight, as
# the service's defaults), one thread per file when parallel; seconds.
direct() {
  "$VENV/bin/python" - "$@" <<'EOF'
import os, sys, time, uuid
from concurrent.futures import ThreadPoolExecutor
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

mode, files = sys.argv[1], sys.argv[2:]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                  region_name=os.environ["AWS_REGION"],
                  config=Config(s3={"addressing_style": "path"}))
cfg = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
bucket = os.environ["S3_BUCKET"]
put = lambda f: s3.upload_file(f, bucket, f"direct/{uuid.uuid4()}", Config=cfg)
start = time.perf_counter()
if mode == "parallel":
    with ThreadPoolExecutor(len(files)) as pool:
        list(pool.map(put, files))
else:
    for f in files:
        put(f)
print(f"{time.perf_counter() - start:.4f}")
EOF
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SVC_PID/status"; }

declare -A T
for rep in $(seq "$REPS"); do
  log "run $rep/$REPS"
  for mode in parallel serial; do
    T[direct_$mode]+="$(direct $mode "${SMALL[@]}") "
    T[service_$mode]+="$(service $mode "${SMALL[@]}") "
  done
  T[direct_big]+="$(direct serial "$WORK/big.bin") "
  T[service_big]+="$(service serial "$WORK/big.bin") "
done

# Memory: a fresh service stores 1 GiB while its RSS is sampled every 20 ms.
kill "$SVC_PID"; wait "$SVC_PID" 2>/dev/null || true
start_service
IDLE=$(rss_kib) PEAK=0
service serial "$WORK/big.bin" >/dev/null &
upload=$!
while kill -0 "$upload" 2>/dev/null; do
  r=$(rss_kib); ((r > PEAK)) && PEAK=$r
  sleep 0.02
done
wait "$upload"

row() { # LABEL BYTES KEY
  local d s
  d=$(tr ' ' '\n' <<<"${T[direct_$3]}" | grep . | median)
  s=$(tr ' ' '\n' <<<"${T[service_$3]}" | grep . | median)
  awk -v l="$1" -v b="$2" -v d="$d" -v s="$s" 'BEGIN {
    printf "%-26s %8.3f s %7.0f MB/s   %8.3f s %7.0f MB/s   %5.2fx\n", l, d, b / d / 1e6, s, b / s / 1e6, d / s }'
}
echo
echo "S3 uploads into single-node Garage $(garage --version | awk '{print $2}'), median of $REPS runs"
printf '%-26s %-25s %-25s %s\n' "" "boto3 direct" "through the service" "service/direct"
row "4 x 20 MiB, parallel" $((80 << 20)) parallel
row "4 x 20 MiB, serial" $((80 << 20)) serial
row "1 x 1 GiB" $((1 << 30)) big
echo "service RSS while storing 1 GiB: idle $((IDLE / 1024)) MiB, peak $((PEAK / 1024)) MiB," \
  "$(((PEAK - IDLE) / 1024)) MiB above idle (bound: part_size x (concurrency + 1) = 8 MiB x 5 = 40 MiB;" \
  "held: at most concurrency parts = 32 MiB, plus a 1 MiB batch)"
