#!/usr/bin/env bash
# Builds librdkafka's own benchmark tool, rdkafka_performance, from the
# example source Debian's librdkafka-dev ships, into
# ${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}/rdkafka_performance, and
# prints its path. The source is not copied into this repository: its private
# includes are replaced by rdshim.h at build time. Installs librdkafka-dev
# with apt if missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${STRATA_TOOLS_DIR:-$HOME/.cache/strata-tools}/rdkafka_performance"
src=/usr/share/doc/librdkafka-dev/examples/rdkafka_performance.c
if [ ! -f "$src" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq librdkafka-dev >&2
fi
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed -e 's|#include "../src/rd.h"|#include "rdshim.h"|' \
    -e 's|#include "rd.h"|#include "rdshim.h"|' \
    -e 's|#include "rdtime.h"||' \
    -e 's|#include "rdkafka.h"|#include <librdkafka/rdkafka.h>|' "$src" > "$tmp/rdkafka_performance.c"
gcc -O2 -I"$here" -o "$out" "$tmp/rdkafka_performance.c" -lrdkafka -lm >&2
echo "$out"
