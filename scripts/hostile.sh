#!/usr/bin/env bash
# The hostile-load figures of issue #15 for one or more builds of the service, side by side, all
# on 127.0.0.1, every loop bounded. Each binary gets a fresh root with fsync off.
#
#   scripts/hostile.sh                      # the current release build
#   scripts/hostile.sh OLD_BIN [NEW_BIN]    # e.g. a build of an earlier commit, then this one
#
# Rows: /metrics series and RSS after 10 000 random methods; files listed after a two-part
# multipart request cut off by its client and by the shutdown timeout; latency of a 1-byte PUT
# under 600 sleeping /wait; how long a body trickled at 1 byte per 3 s lives (bounded at 75 s);
# GET /files with one corrupt meta.json; then REPS (5) alternating runs of /asyncwait with wrk
# and 4 x 20 MB uploads (multipart in parallel, raw PUT one at a time): medians.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-5}
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup hostile
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }

BINS=("$@")
if ((${#BINS[@]} == 0)); then
  cargo build --release -q -p upload-http --bin upload-http
  BINS=("$PWD/target/release/upload-http")
fi

# start BIN ROOT [VAR=VALUE ...]: the service on a free port; sets PORT and PID
start() {
  local bin=$1 root=$2; shift 2
  PORT=$(free_port)
  env UPLOAD__SERVER__PORT="$PORT" UPLOAD__STORAGE__ROOT="$root" UPLOAD__STORAGE__FSYNC=false \
    UPLOAD__SERVER__WORKERS=2 UPLOAD__LIMITS__MAX_FILE_SIZE=3GiB RUST_LOG=warn "$@" "$bin" \
    >>"$WORK/service.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0; sleep 0.05; done
  log "not up: $bin"; return 1
}
listed() { curl -s "http://127.0.0.1:$1/files" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["files"]))'; }

# Client programs, each bounded.
cat >"$WORK/client.py" <<'EOF'
import socket, sys, time, random, http.client

def cut_off(port, path):
    """Two parts, the first whole, the second begun; returns the open socket."""
    parts = (b"--cut\r\nContent-Disposition: form-data; name=\"file\"; filename=\"one.txt\"\r\n\r\n"
             b"the first file, complete\r\n--cut\r\nContent-Disposition: form-data; name=\"file\"; "
             b"filename=\"two.txt\"\r\n\r\nthe second file, cut o")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; "
              b"boundary=cut\r\nContent-Length: 100000\r\n\r\n" + parts)
    return s

cmd, port = sys.argv[1], int(sys.argv[2])
if cmd == "methods":
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(10000):
        c.request("M%d%d" % (random.randrange(1 << 30), i), "/x")
        c.getresponse().read()
elif cmd == "cut-off":
    s = cut_off(port, sys.argv[3])
    print("sent", flush=True)
    sys.stdin.readline()  # until told to go
    s.close()
elif cmd == "waits":
    socks = []
    for _ in range(600):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /wait?duration=15 HTTP/1.1\r\nHost: t\r\n\r\n")
        socks.append(s)
    print("sent", flush=True)
    sys.stdin.readline()
elif cmd == "trickle":
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(0.01)
    s.sendall(b"PUT /files/trickle HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
    start = time.time()
    status = "alive"
    while time.time() - start < 75:
        try:
            s.sendall(b"x")
        except OSError:
            status = "reset"
            break
        try:
            head = s.recv(200)
            status = head.split(b"\r\n")[0].decode() if head else "closed"
            break
        except socket.timeout:
            pass
        time.sleep(3)
    print("%s after %.0f s" % (status, time.time() - start))
EOF
py() { python3 "$WORK/client.py" "$@"; }

declare -A R
for b in "${!BINS[@]}"; do
  bin=${BINS[$b]}
  log "== ${bin}"
  # 1. random methods
  start "$bin" "$WORK/root$b-1"
  py methods "$PORT"
  series=$(curl -s "http://127.0.0.1:$PORT/metrics" | grep -c '^http_requests_total')
  bytes=$(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c)
  rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$PID/status")
  R[$b,methods]="$series series, $((bytes / 1024)) KiB scrape, ${rss} MB RSS"

  # 2. cut-off multipart: by the client, then by the shutdown timeout
  coproc CUT { py cut-off "$PORT" /files; }
  read -r _ <&"${CUT[0]}"
  for _ in $(seq 100); do [[ $(listed "$PORT") == 1 ]] && break; sleep 0.05; done
  echo go >&"${CUT[1]}"; wait "$CUT_PID" || true
  for _ in $(seq 40); do [[ $(listed "$PORT") == 0 ]] && break; sleep 0.05; done
  R[$b,client_cut]="$(listed "$PORT") listed"
  stop "$PID"
  start "$bin" "$WORK/root$b-2" UPLOAD__SERVER__SHUTDOWN_TIMEOUT=1s
  coproc CUT { py cut-off "$PORT" /; }
  read -r _ <&"${CUT[0]}"
  for _ in $(seq 100); do [[ $(listed "$PORT") == 1 ]] && break; sleep 0.05; done
  stop "$PID"
  echo go >&"${CUT[1]}"; wait "$CUT_PID" || true
  start "$bin" "$WORK/root$b-2"
  R[$b,shutdown_cut]="$(listed "$PORT") listed"

  # 3. a 1-byte PUT under 600 sleeping /wait
  coproc WAITS { py waits "$PORT"; }
  read -r _ <&"${WAITS[0]}"
  sleep 1 # the last connections accepted and asleep
  t0=$(now)
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 -T <(printf x) "http://127.0.0.1:$PORT/files/one" || true)
  R[$b,put_under_waits]="$(awk -v s="$t0" -v e="$(now)" 'BEGIN {printf "%.3f", e - s}') s ($code)"
  echo go >&"${WAITS[1]}"; wait "$WAITS_PID" || true

  # 4. a trickled body
  R[$b,trickle]=$(py trickle "$PORT")

  # 5. one corrupt object
  id=$(curl -s -T <(printf a) "http://127.0.0.1:$PORT/files/a.txt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  echo '{not json' >"$WORK/root$b-2/objects/$id/meta.json"
  R[$b,corrupt]="GET /files $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/files"), GET /files/<id> $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/files/$id")"
  stop "$PID"
done

# Figures that must not move: alternate the binaries, REPS times.
log "generating 4 x 20 MB"
for i in 1 2 3 4; do head -c 20000000 /dev/urandom >"$WORK/file$i.bin"; done
declare -A T
for rep in $(seq "$REPS"); do
  for b in "${!BINS[@]}"; do
    log "run $rep/$REPS of ${BINS[$b]}"
    rm -rf "$WORK/perf"; sync
    start "${BINS[$b]}" "$WORK/perf" RUST_LOG=warn,access=off
    T[$b,async]+="$(wrk -t2 -c64 -d5s "http://127.0.0.1:$PORT/asyncwait?duration=0" | awk '/Requests\/sec/ {print $2}') "
    t0=$(now)
    curls=()
    for i in 1 2 3 4; do curl -fs -o /dev/null -F "file=@$WORK/file$i.bin" "http://127.0.0.1:$PORT/files" & curls+=($!); done
    wait "${curls[@]}"
    T[$b,multipart]+="$(awk -v s="$t0" -v e="$(now)" 'BEGIN {printf "%.0f", 80 / (e - s)}') "
    t0=$(now)
    for i in 1 2 3 4; do curl -fs -o /dev/null -T "$WORK/file$i.bin" "http://127.0.0.1:$PORT/files/f$i"; done
    T[$b,raw]+="$(awk -v s="$t0" -v e="$(now)" 'BEGIN {printf "%.0f", 80 / (e - s)}') "
    stop "$PID"
  done
done
med() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median; }

echo
printf '%-40s' ""; for b in "${!BINS[@]}"; do printf ' | %-44s' "$(basename "$(dirname "$(dirname "$(dirname "${BINS[$b]}")")")")"; done; echo
for row in "methods:10 000 random methods" "client_cut:cut-off multipart, client closes" \
  "shutdown_cut:cut-off multipart, shutdown timeout" "put_under_waits:1-byte PUT, 600 /wait asleep" \
  "trickle:body at 1 byte / 3 s" "corrupt:one corrupt meta.json"; do
  printf '%-40s' "${row#*:}"; for b in "${!BINS[@]}"; do printf ' | %-44s' "${R[$b,${row%%:*}]}"; done; echo
done
for row in "async:/asyncwait, wrk -c64 (req/s)" "multipart:4 x 20 MB multipart parallel (MB/s)" \
  "raw:4 x 20 MB raw PUT serial (MB/s)"; do
  printf '%-40s' "${row#*:}"; for b in "${!BINS[@]}"; do printf ' | %-44s' "$(med "$b,${row%%:*}") (${T[$b,${row%%:*}]% })"; done; echo
done
