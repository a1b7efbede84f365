#!/usr/bin/env bash
# The browser page's upload rate (issue #20): one SIZE_MIB file uploaded from Chromium through
# the page (tus, 32 MiB PATCHes with SHA-256 checksums) against `curl -T` of the same file to
# the same service in the same run; repetitions interleaved; medians and the ratio.
#
#   scripts/bench-page.sh          # SIZE_MIB=1024, REPS=5, FSYNC=true
#
# Stops only what it started (the bench's service, chromedriver and Chromium end with it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lib/install-chromium.sh
cargo build --release -q -p upload-http
FASTUPLOAD_BIN=$PWD/target/release/upload-http cargo bench -q -p upload-http --bench page
