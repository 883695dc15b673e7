#!/bin/sh
# bench/run-replay.sh [passes] [extra go test flags] — the measured run behind
# BENCHMARKS.md's "Replay from the bucket (issue 14)" section. Run it from the
# repository root after scripts/install-tools.sh has built MinIO (and
# bench/rdkafka/build.sh rdkafka_performance; the benchmark builds it if
# missing). Each pass is one process: MinIO, the bucket seeded with two
# 1 GiB topics, then every case against the S3-like link (toxiproxy) and
# loopback, each Strata case on a freshly started `strata serve`.
set -eu
passes=${1:-3}
shift 2>/dev/null || true
out=bench/results/replay-run.txt
machine=bench/results/replay-machine.txt
mkdir -p bench/results
eval "$(./scripts/install-tools.sh --print-env 2>/dev/null)"
{ date -u; nproc; grep -m1 'model name' /proc/cpuinfo; go version; git rev-parse HEAD 2>/dev/null || true; } > "$machine"
: > "$out"
i=1
while [ "$i" -le "$passes" ]; do
	echo "pass $i/$passes start: $(uptime)" >> "$machine"
	go test ./bench/ -run '^$' -bench '^BenchmarkReplay$' -benchtime=1x -count 1 -timeout 60m "$@" >> "$out"
	echo "pass $i/$passes end:   $(uptime)" >> "$machine"
	i=$((i + 1))
done
