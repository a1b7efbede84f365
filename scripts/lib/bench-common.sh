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

# build_before REV: the service as it was at git revision REV, built in a worktree into
# target/before (beside this tree's target directory, so its dependencies build once), so that
# a change is measured against what it replaces in the same run. Prints the binary's path.
build_before() {
  log "building the service at $1"
  git worktree add -q --detach "$WORK/before" "$1"
  CARGO_TARGET_DIR=$PWD/target/before cargo build --release -q \
    --manifest-path "$WORK/before/Cargo.toml" -p upload-http --bin upload-http
  git worktree remove --force "$WORK/before"
  echo "$PWD/target/before/release/upload-http"
}
