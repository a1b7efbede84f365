# Helpers shared by garage-dev.sh and garage-cluster.sh; sourced, not run.
# The sourcing script sets LOG_NAME (its log prefix) and VERSION (the garage
# version `cargo install` builds when none is found).

log() { echo "$LOG_NAME: $*" >&2; }
die() { log "error: $*"; exit 1; }
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
# exports NAME VALUE ...: print single-quoted `export` lines (sh and dotenv friendly)
exports() { while (($#)); do printf "export %s='%s'\n" "$1" "${2//\'/\'\\\'\'}"; shift 2; done; }
# true if something accepts TCP connections on $1:$2
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# true if $1 is the PID of a live (non-zombie) garage process; guards against PID reuse
is_garage() {
  local _pid comm state
  read -r _pid comm state _ 2>/dev/null <"/proc/$1/stat" && [[ $comm == "(garage)" && $state != Z ]]
}

# Find the garage binary (GARAGE_BIN, PATH, cargo's bin), building it with `cargo install` if needed.
find_garage() {
  local cargo_bin=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/garage
  if [[ -n ${GARAGE_BIN:-} ]]; then return; fi
  if GARAGE_BIN=$(command -v garage); then return; fi
  if [[ -x $cargo_bin ]]; then GARAGE_BIN=$cargo_bin; return; fi
  command -v cargo >/dev/null || die "garage is not installed and cargo is not available"
  log "garage not found: building garage $VERSION with cargo (about 12-20 min on 2 cores)"
  cargo install garage --version "$VERSION" --locked >&2
  GARAGE_BIN=$cargo_bin
}
