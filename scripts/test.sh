#!/usr/bin/env bash
# The project's test command (README "Tests"): every crate's unit, integration and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --locked --no-fail-fast "$@"
cargo test --workspace --doc --locked
