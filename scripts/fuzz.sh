#!/usr/bin/env bash
# Fuzzes everything that parses client bytes with cargo-fuzz (libFuzzer) on the stable
# toolchain (`-s none`: coverage-guided, no sanitizer):
#   request   any bytes as an HTTP/1.1 request to the real service, in process: actix's parser,
#             multipart bodies through the upload handler, Range, Content-Digest, If-None-Match,
#             file names, ids, queries, tus headers (fuzz/fuzz_targets/request.rs);
#   settings  the settings loader: a settings file and UPLOAD__ variables (settings.rs).
# Seeds are committed in fuzz/corpus/<target>; what a run finds is kept in
# target/fuzz-corpus/<target>, and a crash in fuzz/artifacts/<target> (replay it with
# `cargo fuzz run -s none <target> <file>`, then make it a regression test).
#
#   scripts/fuzz.sh                      # 60 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh     # longer
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
# The request target's store lives in a temporary directory the fuzzer cannot remove (libFuzzer
# exits without running destructors): keep it under target/ and remove it after.
export TMPDIR=$PWD/target/fuzz-tmp
rm -rf "$TMPDIR" && mkdir -p "$TMPDIR"
trap 'rm -rf "$TMPDIR"' EXIT
for target in request settings; do
  mkdir -p "target/fuzz-corpus/$target"
  printf '\n== %s: %s s\n' "$target" "${FUZZ_SECONDS:-60}"
  cargo fuzz run -s none "$target" "target/fuzz-corpus/$target" "fuzz/corpus/$target" -- \
    -max_total_time="${FUZZ_SECONDS:-60}" -max_len=65536 -timeout=10 -print_final_stats=1
done
