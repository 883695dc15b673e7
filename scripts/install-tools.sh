#!/usr/bin/env bash
# Builds the external servers the tests start — MinIO and Consul — at the
# versions pinned in tools/<name>/go.mod, into a cache directory outside the
# repository:
#
#   ${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}/<name>-<version>/<name>
#
# A binary that is already there is not rebuilt, so repeat runs (and CI runs on
# a clean clone of the same machine) cost nothing; a fresh machine builds both
# (MinIO 2-3 min, Consul ~4 min on 2 cores). Each tool has its own module
# because their dependency graphs conflict; neither touches the main go.mod.
#
# Prints one line per tool and, last, the exports testenv reads:
#   STRATA_MINIO_BIN=…  STRATA_CONSUL_BIN=…
# `eval "$(scripts/install-tools.sh --print-env)"` sets them in a shell.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

print_env=0
if [ "${1:-}" = "--print-env" ]; then
  print_env=1
fi

tools_dir="${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}"

log() {
  # Progress goes to stderr so --print-env output stays eval-able.
  echo "$@" >&2
}

# pinned_version MODULE_DIR MODULE_PATH prints the version tools/<dir>/go.mod
# requires for MODULE_PATH.
pinned_version() {
  local v
  v="$(awk -v m="$2" '($1 == m || ($1 == "require" && $2 == m)) { print ($1 == "require" ? $3 : $2); exit }' "$1/go.mod")"
  if [ -z "$v" ]; then
    log "install-tools: $2 is not required in $1/go.mod"
    exit 1
  fi
  echo "$v"
}

# build NAME PACKAGE MINUTES builds PACKAGE from tools/NAME into the cache and
# prints the binary's path on stdout.
build() {
  local name="$1" pkg="$2" minutes="$3"
  local moddir="$root/tools/$name"
  local version dir bin
  version="$(pinned_version "$moddir" "$pkg")"
  dir="$tools_dir/$name-$version"
  bin="$dir/$name"
  if [ -x "$bin" ]; then
    log "== $name $version: cached at $bin"
    echo "$bin"
    return
  fi
  mkdir -p "$dir"
  log "== building $name $version ($minutes min on 2 cores) into $dir"
  local start=$SECONDS
  # Build to a temporary name and rename, so an interrupted build never leaves
  # a half-written binary that a later run would take as cached.
  local tmp="$bin.tmp.$$"
  if ! (cd "$moddir" && GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off go build -o "$tmp" "$pkg") >&2; then
    rm -f "$tmp"
    log "install-tools: building $name $version failed (see the go output above);"
    log "  the module proxy must be reachable for a first build: $(go env GOPROXY)"
    exit 1
  fi
  mv -f "$tmp" "$bin"
  log "== built $name in $((SECONDS - start))s"
  echo "$bin"
}

minio_bin="$(build minio github.com/minio/minio 2-3)"
consul_bin="$(build consul github.com/hashicorp/consul 4)"

if [ "$print_env" -eq 1 ]; then
  printf 'export STRATA_MINIO_BIN=%q\n' "$minio_bin"
  printf 'export STRATA_CONSUL_BIN=%q\n' "$consul_bin"
else
  echo "STRATA_MINIO_BIN=$minio_bin"
  echo "STRATA_CONSUL_BIN=$consul_bin"
fi
