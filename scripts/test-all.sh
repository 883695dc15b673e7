#!/usr/bin/env bash
# Runs Strata's whole test suite on a fresh machine: installs what the tests
# need (kcat, gcc and librdkafka-dev from Debian; MinIO and Consul built by
# install-tools.sh into
# ${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}, a few minutes the first time,
# cached after), then runs every Go test, including the fuzz targets' seed
# corpora. Extra arguments go to `go test` (e.g. -run TestX).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
# e2e builds small librdkafka programs (e2e/testdata/rdkafka_admin.c, rdkafka_txn.c).
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
[ -f /usr/include/librdkafka/rdkafka.h ] || need_apt+=(librdkafka-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing ${need_apt[*]} (apt)"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Exports STRATA_MINIO_BIN and STRATA_CONSUL_BIN for testenv.
tools_env="$(./scripts/install-tools.sh --print-env)"
eval "$tools_env"

echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 20m "$@" ./...
