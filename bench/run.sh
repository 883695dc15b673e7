#!/bin/sh
# bench/run.sh [passes] — the measured run behind BENCHMARKS.md. Run it from
# the repository root. Each pass runs every benchmark once (-count 1), and
# passes repeat, so a burst of load from something else on the machine hits
# one sample of each target rather than all samples of one target.
set -eu
passes=${1:-5}
out=bench/results/run.txt
mkdir -p bench/results
{ date -u; uptime; nproc; grep -m1 'model name' /proc/cpuinfo; go version; git rev-parse HEAD 2>/dev/null || true; } > bench/results/machine.txt
: > "$out"
i=1
while [ "$i" -le "$passes" ]; do
	echo "pass $i/$passes: $(uptime)" >> bench/results/machine.txt
	go test ./bench/ -run '^$' -bench . -benchtime=1x -count 1 -timeout 30m >> "$out"
	i=$((i + 1))
done
echo "end: $(uptime)" >> bench/results/machine.txt
go run ./bench/cmd/benchtable < "$out" > bench/results/tables.md
benchstat -col /target "$out" > bench/results/benchstat.txt || true
