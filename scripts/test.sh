#!/usr/bin/env bash
# The project's test command (README "Tests"): every crate's unit, integration and doc tests,
# then schemathesis against the running service (scripts/schemathesis.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The S3 tests run against a real Garage: a single node for upload-core's
# suite (its settings exported here), and clusters the tests start themselves.
# Garage is built with cargo the first time (12-20 min), then found on PATH.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
garage_dir=target/garage-dev
# Assigned first: a store that cannot start (its port taken) stops the script here.
garage_env=$(scripts/garage-dev.sh start "$garage_dir")
eval "$garage_env"
trap 'scripts/garage-dev.sh stop "$garage_dir"' EXIT
# Here a missing store is a failure; a plain `cargo test` skips the S3 tests instead.
export FASTUPLOAD_REQUIRE_S3=1
# The tus tests drive the service with tuspy, the tus project's Python client.
python3 -c 'import tusclient' 2>/dev/null || python3 -m pip install --quiet 'tuspy==1.1.0'
# The page's tests drive Debian's Chromium through chromedriver.
scripts/lib/install-chromium.sh
export FASTUPLOAD_REQUIRE_CLIENTS=1
cargo nextest run --workspace --locked --no-fail-fast "$@"
cargo test --workspace --doc --locked
# The live service against its own OpenAPI document (skipped when a test filter is given).
if (($# == 0)); then MAX_TIME=${SCHEMATHESIS_TIME:-90} scripts/schemathesis.sh; fi
