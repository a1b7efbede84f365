#!/usr/bin/env bash
# The service against its own OpenAPI document: schemathesis (PyPI) generates requests for every
# operation of /openapi.json, valid and invalid, and checks every answer: no 5xx, the status
# documented, the content type, headers and body as documented. The debug build runs on
# 127.0.0.1 with a fresh root, tokens and download links on; requests carry an admin token.
#
#   scripts/schemathesis.sh                 # MAX_TIME=120 seconds (scripts/test.sh runs it so)
#   MAX_TIME=1200 scripts/schemathesis.sh   # a longer search
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_TIME=${MAX_TIME:-120}
# shellcheck source=lib/bench-common.sh
. scripts/lib/bench-common.sh
bench_setup schemathesis
python3 -c 'import schemathesis' 2>/dev/null || python3 -m pip install --quiet 'schemathesis==4.32.5'
# The same features as the test build (dev-dependencies unified), so after scripts/test.sh
# this builds nothing.
cargo build -q --locked --workspace --tests

PORT=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
DIGEST=$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)
env UPLOAD__SERVER__PORT="$PORT" UPLOAD__STORAGE__ROOT="$WORK/data" UPLOAD__STORAGE__FSYNC=false \
  UPLOAD__AUTH__TOKENS="fuzz:admin:$DIGEST" \
  UPLOAD__AUTH__LINK_KEY="schemathesis-link-key-0123456789abcdef" \
  UPLOAD__LIMITS__MAX_FILE_SIZE=1MiB UPLOAD__COMPUTE__MAX_N=25 RUST_LOG=warn \
  target/debug/upload-http >"$WORK/service.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.05; done

status=0
# Deliberate deviations (README "API description"), left out of the checks:
# - positive_data_acceptance: a request valid by the schema may still be refused, e.g. a
#   Content-Digest that is well formed but not the body's, or a tus PATCH at another offset.
# - unsupported_method: unlisted methods get 405 without an Allow header.
# /wait and /asyncwait are left out: valid requests sleep up to 60 s each and would spend the
# budget sleeping (their query parser has its own unit test).
# Per-operation exceptions, each with its reason: scripts/lib/schemathesis.toml. Every other
# check runs (schemathesis's default); `--checks all` would override those exceptions.
PYTHONPATH=scripts/lib SCHEMATHESIS_HOOKS=schemathesis_hooks \
  st --config-file scripts/lib/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
  --exclude-checks positive_data_acceptance,unsupported_method \
  --exclude-path-regex '^/(async)?wait$' --generation-database none \
  -H "Authorization: Bearer $TOKEN" \
  --max-time "$MAX_TIME" --request-timeout 10 --workers 2 \
  --suppress-health-check all --warnings off --no-color || status=$?
if grep -q 'panicked' "$WORK/service.log"; then
  log "the service panicked:"; grep -m5 'panicked' "$WORK/service.log" >&2; status=1
fi
exit "$status"
