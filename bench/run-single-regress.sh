#!/usr/bin/env bash
# bench/run-single-regress.sh OLD_REV [passes] [records] — the single-node
# produce hot path against an older commit, same machine, same run:
# rdkafka_performance (acks=1, 1 KiB records, 16 partitions) into one
# `strata serve` built from OLD_REV and one built from the working tree,
# alternating, page cache dropped before each run; reports the broker's
# CPU-seconds per GB (/proc/PID/stat utime+stime) and MB/s.
set -euo pipefail
old=${1:?usage: run-single-regress.sh OLD_REV [passes] [records]}
passes=${2:-3}
records=${3:-1000000}
root="$(pwd)"
work="$(mktemp -d)"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
rdk="$(bench/rdkafka/build.sh)"
git worktree add -q --detach "$work/old" "$old"
(cd "$work/old" && go build -o "$work/strata-old" ./cmd/strata)
git worktree remove --force "$work/old"
go build -o "$work/strata-new" ./cmd/strata
tck=$(getconf CLK_TCK)
gb=$(awk -v n="$records" 'BEGIN { printf "%.6f", n * 1024 / 1e9 }')
echo "# $(date -u) $(uptime)"
echo "# old $old, new $(git rev-parse --short HEAD)+working tree; $records x 1 KiB, 16 partitions, acks=1"
for pass in $(seq 1 "$passes"); do
	for which in old new; do
		dir="$work/data-$which-$pass"
		"$work/strata-$which" serve --data-dir "$dir" --listen 127.0.0.1:29500 --log-level warn > "$work/log" 2>&1 &
		pid=$!
		for _ in $(seq 1 300); do grep -q "listening on" "$work/log" && break; sleep 0.05; done
		"$work/strata-new" topic create t --partitions 16 --bootstrap-server 127.0.0.1:29500 > /dev/null
		sync; { echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
		set -- $(cut -d' ' -f10,14,15 "/proc/$pid/stat"); fbefore=$1; before=$(( $2 + $3 ))
		t0=$(date +%s.%N)
		"$rdk" -P -t t -b 127.0.0.1:29500 -s 1024 -c "$records" -a 1 -q -X linger.ms=5 -X batch.size=1000000 -X enable.idempotence=false > /dev/null 2>&1
		t1=$(date +%s.%N)
		set -- $(cut -d' ' -f10,14,15 "/proc/$pid/stat"); fafter=$1; after=$(( $2 + $3 ))
		kill "$pid"; wait "$pid" 2>/dev/null || true
		rm -rf "$dir"
		awk -v w="$which" -v p="$pass" -v a="$after" -v b="$before" -v t="$tck" -v g="$gb" -v t0="$t0" -v t1="$t1" -v fa="$fafter" -v fb="$fbefore" \
			'BEGIN { printf "pass %d %-4s %7.1f MB/s  %5.2f CPU-s  %5.2f CPU-s/GB  %7.0f minflt/GB\n", p, w, g*1000/(t1-t0), (a-b)/t, (a-b)/t/g, (fa-fb)/g }'
	done
done
