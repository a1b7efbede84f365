#!/bin/sh
# garage-init: lays out the single Garage node of docker-compose.yml and creates the demo
# key and bucket. Every step is skipped when already done, so it can run on every `up`.
# Settings: GARAGE_CONFIG (default /etc/garage.toml), BUCKET, KEY_NAME, KEY_ID, KEY_SECRET.
set -eu
g() { garage -c "${GARAGE_CONFIG:-/etc/garage.toml}" "$@"; }
log() { echo "garage-init: $*" >&2; }

tries=0
until g status >/dev/null 2>&1; do
  tries=$((tries + 1))
  [ "$tries" -le 60 ] || { log "garage did not answer within 60 s"; exit 1; }
  sleep 1
done

if g status | grep -q 'NO ROLE ASSIGNED'; then
  node=$(g node id -q | cut -d@ -f1)
  version=$(g layout show | sed -n 's/^Current cluster layout version: \([0-9]*\).*/\1/p')
  g layout assign -z dc1 -c 1G "$node" >/dev/null
  g layout apply --version $((version + 1)) >/dev/null
  log "layout applied (version $((version + 1)))"
fi
g key info "$KEY_NAME" >/dev/null 2>&1 || { g key import --yes -n "$KEY_NAME" "$KEY_ID" "$KEY_SECRET" >/dev/null; log "key $KEY_NAME imported"; }
g bucket info "$BUCKET" >/dev/null 2>&1 || { g bucket create "$BUCKET" >/dev/null; log "bucket $BUCKET created"; }
g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME" >/dev/null
log "ready: bucket $BUCKET, key $KEY_ID"
