# Helpers shared by the benchmark scripts; sourced, not run.

log() { printf '%s\n' "$*" >&2; }
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# bench_setup NAME: WORK, a fresh directory under /tmp, and PIDS, where the script adds each
# process it starts; on exit, those processes (and only those) are stopped and WORK removed.
bench_setup() {
  WORK=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  trap 'for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
