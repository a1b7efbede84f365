#!/bin/sh
# garage-init: lays out the Garage nodes of docker-compose.yml (one node) or
# docker-compose.cluster.yml (three) and creates the demo key and bucket. Every step is skipped
# when already done, so it can run on every `up`. It runs beside the first node (its RPC on
# 127.0.0.1 and its metadata directory).
# Settings: GARAGE_CONFIG (default /etc/garage.toml), BUCKET, KEY_NAME, KEY_ID, KEY_SECRET, and
# PEERS: the other nodes as HOST=METADATA_DIR, their metadata volumes mounted read-only here
# (their node key is all that is read).
set -eu
g() { garage -c "${GARAGE_CONFIG:-/etc/garage.toml}" "$@"; }
log() { echo "garage-init: $*" >&2; }
# retry WHAT COMMAND...: up to 60 tries, a second apart (nodes start in any order).
retry() {
  what=$1; shift; tries=0
  until "$@" >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -le 60 ] || { log "$what: no success within 60 s"; "$@"; exit 1; }
    sleep 1
  done
}
node_id() { od -An -tx1 -v "$1/node_key.pub" | tr -d ' \n'; }

retry "garage status" g status
ids=$(g node id -q 2>/dev/null | cut -d@ -f1)
for peer in ${PEERS:-}; do
  host=${peer%%=*} dir=${peer#*=}
  retry "node key of $host" test -s "$dir/node_key.pub"
  id=$(node_id "$dir")
  retry "connecting to $host" g node connect "$id@$host:3901"
  ids="$ids $id"
done

if g status | grep -q 'NO ROLE ASSIGNED'; then
  zone=0
  for id in $ids; do
    zone=$((zone + 1))
    g layout assign -z "dc$zone" -c 1G "$id" >/dev/null
  done
  version=$(g layout show | sed -n 's/^Current cluster layout version: \([0-9]*\).*/\1/p')
  g layout apply --version $((version + 1)) >/dev/null
  log "layout applied (version $((version + 1)), $zone nodes)"
fi
have_key() { g key info "$KEY_NAME" || g key import --yes -n "$KEY_NAME" "$KEY_ID" "$KEY_SECRET"; }
have_bucket() { g bucket info "$BUCKET" || g bucket create "$BUCKET"; }
# Right after a new layout, writes wait for the nodes to agree on it.
retry "key $KEY_NAME" have_key
retry "bucket $BUCKET" have_bucket
retry "bucket permissions" g bucket allow --read --write --owner "$BUCKET" --key "$KEY_NAME"
log "ready: bucket $BUCKET, key $KEY_ID"
