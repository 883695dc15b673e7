#!/bin/sh
# bench/run-tiering.sh [passes] — the measured tiering run behind the
# "Tiered storage" sections of BENCHMARKS.md. Run it from the repository root
# after scripts/install-tools.sh has built MinIO. Like run.sh, each pass runs
# every case once, so outside load lands on one sample of each.
set -eu
passes=${1:-3}
out=bench/results/tiering-run.txt
mkdir -p bench/results
eval "$(./scripts/install-tools.sh --print-env 2>/dev/null)"
{ date -u; uptime; nproc; grep -m1 'model name' /proc/cpuinfo; go version; git rev-parse HEAD 2>/dev/null || true; } > bench/results/tiering-machine.txt
: > "$out"
i=1
while [ "$i" -le "$passes" ]; do
	echo "pass $i/$passes: $(uptime)" >> bench/results/tiering-machine.txt
	go test ./bench/ -run '^$' -bench '^BenchmarkTiering$' -benchtime=1x -count 1 -timeout 30m >> "$out"
	i=$((i + 1))
done
echo "end: $(uptime)" >> bench/results/tiering-machine.txt
