#!/usr/bin/env bash
# bench/run-kgo-produce-ab.sh OLD_BIN NEW_BIN [records] — franz-go (`strata bench
# produce`, acks=1, 16 partitions, 1 KiB records) into one broker of each
# build, alternating, 3 passes; prints MB/s, the broker's CPU-s/GB and minor
# page faults per GB (/proc/PID/stat). Run from the repository root.
set -u
old=${1:?usage: run-kgo-produce-ab.sh OLD_BIN NEW_BIN [records]}
new=${2:?usage: run-kgo-produce-ab.sh OLD_BIN NEW_BIN [records]}
recs=${3:-500000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tck=$(getconf CLK_TCK)
for pass in 1 2 3; do
for which in old new; do
  rm -rf "$work/d"; if [ "$which" = old ]; then bin=$old; else bin=$new; fi; "$bin" serve --data-dir "$work/d" --listen 127.0.0.1:29610 --log-level warn > "$work/l" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q "listening on" "$work/l" && break; sleep 0.05; done
  "$new" topic create t --partitions 16 --bootstrap-server 127.0.0.1:29610 > /dev/null
  set -- $(cut -d' ' -f10,14,15 /proc/$pid/stat); f0=$1; c0=$(( $2 + $3 ))
  out=$("$new" bench produce --bootstrap-server 127.0.0.1:29610 --topic t --num-records $recs --record-size 1024 --acks 1 --report-interval 0 2>&1 | tail -1)
  set -- $(cut -d' ' -f10,14,15 /proc/$pid/stat); f1=$1; c1=$(( $2 + $3 ))
  kill $pid; wait $pid 2>/dev/null
  gb=$(awk -v n=$recs 'BEGIN{print n*1024/1e9}')
  mbs=$(echo "$out" | grep -o '([0-9.]* MB/sec)' | tr -d '(')
  awk -v w=$which -v p=$pass -v c=$((c1-c0)) -v t=$tck -v g=$gb -v f=$((f1-f0)) -v m="$mbs" 'BEGIN{printf "pass %d %s  %s  %.2f CPU-s/GB  %.0f minflt/GB\n", p, w, m, c/t/g, f/g}'
done
done
