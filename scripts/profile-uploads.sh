#!/usr/bin/env bash
# Where the service's CPU goes while it receives uploads: `perf record` of one service during 5
# batches of 4 x 20 MB sent one after another with curl (raw `PUT` and multipart), fsync off,
# grouped by what the time was spent on, in ms of CPU per 80 MB batch (issue #19).
#
#   scripts/profile-uploads.sh [BIN...]   # default: this tree's release build; several: side by side
#
# Needs perf (apt: linux-perf) and the right to profile (root, or perf_event_paranoid <= 1).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup profile-uploads
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
if (($# == 0)); then
  cargo build --release -q -p upload-http --bin upload-http
  set -- target/release/upload-http
fi
for i in 1 2 3 4; do head -c 20000000 /dev/urandom >"$WORK/f$i.bin"; done

# batch SHAPE URL: the four files, one after another.
batch() {
  local i
  for i in 1 2 3 4; do
    if [[ $1 == raw ]]; then curl -fs -o /dev/null -T "$WORK/f$i.bin" "$2/files/f$i"
    else curl -fs -o /dev/null -F "file=@$WORK/f$i.bin" "$2/files"; fi
  done
}

for bin in "$@"; do
  for shape in raw multipart; do
    port=$(free_port)
    UPLOAD__SERVER__PORT=$port UPLOAD__STORAGE__ROOT="$WORK/data-$port" UPLOAD__STORAGE__FSYNC=false \
      UPLOAD__SERVER__WORKERS=2 RUST_LOG=warn "$bin" >"$WORK/service.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.05; done
    batch "$shape" "http://127.0.0.1:$port" # warm-up
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    perf record -q -F 2999 -g -p "$pid" -o "$WORK/perf.data" 2>/dev/null &
    recorder=$!
    sleep 0.3
    for _ in 1 2 3 4 5; do sync; batch "$shape" "http://127.0.0.1:$port"; done
    kill -INT "$recorder"; wait "$recorder" || true
    ticks=$(($(awk '{print $14 + $15}' "/proc/$pid/stat") - before))
    stop "$pid"
    perf report -i "$WORK/perf.data" --no-children --sort symbol -g none --percent-limit 0 --stdio \
      2>/dev/null >"$WORK/report.txt"
    echo "$bin, $shape, one at a time: $((ticks * 1000 / $(getconf CLK_TCK) / 5)) ms of CPU per 80 MB"
    python3 - "$WORK/report.txt" "$((ticks * 1000 / $(getconf CLK_TCK) / 5))" <<'PY'
import re, sys
groups = [  # first match wins
    ("SHA-256", ["sha2::", "sha256"]),
    ("socket reads (TCP, copy to user)", ["tcp_", "_copy_to_iter", "skb", "recvmsg", "sock_", "recvfrom",
        "ip_", "nf_", "ipt_", "conntrack", "softirq", "napi", "inet_", "netif", "loopback", "net_rx"]),
    ("page-cache writes", ["copy_folio_from_iter", "ext4_da", "filemap", "folio", "generic_perform_write",
        "balance_dirty", "clear_page", "ext4_es", "mark_buffer_dirty", "block_write"]),
    ("direct writes (page pinning, bios)", ["gup_", "bio", "blk_", "iowrite", "virtio", "iomap", "dio_"]),
    ("multipart parse", ["actix_multipart", "memchr", "upload_http::multipart"]),
    ("memcpy", ["memmove", "memcpy"]),
    ("scheduling, wake-ups", ["futex", "schedule", "finish_task_switch", "_raw_spin_unlock_irq", "wake_up",
        "epoll", "switch_to", "pick_next", "update_curr", "enqueue", "dequeue", "select_task", "sched_"]),
]
shares = {name: 0.0 for name, _ in groups} | {"other": 0.0}
for line in open(sys.argv[1]):
    m = re.match(r"\s+([\d.]+)%\s+\[.\]\s+(.*)", line)
    if m:
        name = next((n for n, keys in groups if any(k in m.group(2) for k in keys)), "other")
        shares[name] += float(m.group(1))
total, ms = sum(shares.values()) or 1, float(sys.argv[2])
for name, share in shares.items():
    print(f"  {name:36s} {share / total * ms:6.1f} ms  ({share / total * 100:4.1f}%)")
PY
  done
done
