#!/usr/bin/env bash
# bench/run-cluster.sh [records] — what replication costs, measured as issue 8
# asks: one Strata broker (acks=1, RF=1) against three brokers on one Consul
# (RF=3, min.insync.replicas=2, acks=all), with librdkafka's own
# rdkafka_performance (an outside client, built by bench/rdkafka/build.sh)
# and with `strata bench produce` (franz-go). For each run it reports the
# client's throughput and the brokers' CPU-seconds per GB acknowledged, from
# /proc/PID/stat (utime+stime), summed over the brokers; then produce latency
# p50/p99 at 10,000 and 50,000 records/s and at half of each setup's
# measured maximum rate (kgo's acks=all producer). Results go to
# bench/results/cluster.txt. Run it from the repository root on a machine
# that is otherwise as quiet as possible; wall-clock numbers still swing.
set -euo pipefail
records=${1:-1000000}
size=1024
parts=16
root="$(pwd)"
out="$root/bench/results/cluster.txt"
mkdir -p "$root/bench/results"
work="$(mktemp -d)"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

eval "$(./scripts/install-tools.sh --print-env)"
rdk="$(bench/rdkafka/build.sh)"
go build -o "$work/strata" ./cmd/strata
strata="$work/strata"
tck=$(getconf CLK_TCK)

cpu_ticks() { # sum of utime+stime over the given pids, in clock ticks
	local sum=0
	for p in "$@"; do
		set -- $(cut -d' ' -f14,15 "/proc/$p/stat")
		sum=$((sum + $1 + $2))
	done
	echo "$sum"
}

minflt() { # sum of minor page faults over the given pids
	local sum=0
	for p in "$@"; do
		set -- $(cut -d' ' -f10 "/proc/$p/stat")
		sum=$((sum + $1))
	done
	echo "$sum"
}

wait_listen() { # file → address once "listening on" appears
	for _ in $(seq 1 600); do
		if grep -q "listening on" "$1" 2>/dev/null; then
			grep -m1 -o 'listening on [^ ]*' "$1" | cut -d' ' -f3
			return
		fi
		sleep 0.1
	done
	echo "no listen line in $1" >&2
	cat "$1" >&2
	exit 1
}

start_broker() { # id port [extra args...] → pid in $broker_pid
	local id=$1 port=$2
	shift 2
	"$strata" serve --data-dir "$work/b$id" --listen "127.0.0.1:$port" --node-id "$id" --log-level warn "$@" > "$work/b$id.log" 2>&1 &
	broker_pid=$!
	pids+=("$broker_pid")
	wait_listen "$work/b$id.log" > /dev/null
}

{
	echo "# bench/run-cluster.sh $records — $(date -u)"
	echo "# $(uptime)"
	echo "# $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
	echo "# $(go version), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "# $records records of $size bytes, $parts partitions"
} > "$out"

gb=$(awk -v n="$records" -v s="$size" 'BEGIN { printf "%.6f", n * s / 1e9 }')

# measure NAME CLIENT ACKS TOPIC BOOTSTRAP PIDS... — one produce run.
measure() {
	local name=$1 client=$2 acks=$3 topic=$4 boot=$5
	shift 5
	local before after secs rate
	# Same page-cache conditions for every run: writing into a cache that
	# must first evict costs more than writing into free memory.
	sync
	{ echo 1 > /proc/sys/vm/drop_caches; } 2>/dev/null || true
	before=$(cpu_ticks "$@")
	local fbefore fafter
	fbefore=$(minflt "$@")
	local t0 t1
	t0=$(date +%s.%N)
	if [ "$client" = rdkafka ]; then
		"$rdk" -P -t "$topic" -b "$boot" -s "$size" -c "$records" -a "$acks" -q \
			-X linger.ms=5 -X batch.size=1000000 -X enable.idempotence=false > "$work/rdk.out" 2>&1
	else
		"$strata" bench produce --bootstrap-server "$boot" --topic "$topic" --num-records "$records" --record-size "$size" \
			--acks "$acks" --report-interval 0 > "$work/kgo.out" 2>&1
	fi
	t1=$(date +%s.%N)
	after=$(cpu_ticks "$@")
	fafter=$(minflt "$@")
	secs=$(awk -v a="$after" -v b="$before" -v t="$tck" 'BEGIN { printf "%.2f", (a - b) / t }')
	rate=$(awk -v t0="$t0" -v t1="$t1" -v n="$records" 'BEGIN { printf "%.0f", n / (t1 - t0) }')
	mbs=$(awk -v t0="$t0" -v t1="$t1" -v g="$gb" 'BEGIN { printf "%.1f", g * 1000 / (t1 - t0) }')
	perg=$(awk -v s="$secs" -v g="$gb" 'BEGIN { printf "%.2f", s / g }')
	faults=$(awk -v a="$fafter" -v b="$fbefore" -v g="$gb" 'BEGIN { printf "%.0f", (a - b) / g }')
	printf "%-34s %-8s acks=%-3s %9s rec/s %7s MB/s  broker CPU %6s s  %6s CPU-s/GB  %7s minflt/GB\n" "$name" "$client" "$acks" "$rate" "$mbs" "$secs" "$perg" "$faults" >> "$out"
	echo "$rate"
}

# latency NAME ACKS TOPIC BOOTSTRAP RATE — p50/p99 at RATE records/s.
latency() {
	local name=$1 acks=$2 topic=$3 boot=$4 rate=$5
	"$strata" bench produce --bootstrap-server "$boot" --topic "$topic" --duration 20s --record-size "$size" \
		--acks "$acks" --throughput "$rate" --report-interval 0 --json > "$work/lat.json" 2>/dev/null
	python3 - "$name" "$rate" "$work/lat.json" >> "$out" <<'PY'
import json, sys
name, rate, path = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.load(open(path))
print(f"{name:34s} latency at {rate} rec/s (got {d['records_per_sec']:.0f}): p50 {d['latency_p50_ms']:.2f} ms  p99 {d['latency_p99_ms']:.2f} ms  max {d['latency_max_ms']:.2f} ms")
PY
}

# --- one broker, RF=1, acks=1 -------------------------------------------
start_broker 1 29092
single=$broker_pid
"$strata" topic create single --partitions $parts --replication-factor 1 --bootstrap-server 127.0.0.1:29092 > /dev/null
r1=$(measure "single broker, RF=1" rdkafka 1 single 127.0.0.1:29092 "$single")
r2=$(measure "single broker, RF=1" kgo 1 single 127.0.0.1:29092 "$single")
for rate in 10000 50000 $((r2 / 2)); do
	latency "single broker, RF=1, acks=1" 1 single 127.0.0.1:29092 "$rate"
done
kill "$single"; wait "$single" 2>/dev/null || true

# --- three brokers on Consul, RF=3, min.insync.replicas=2, acks=all ------
"$STRATA_CONSUL_BIN" agent -dev -bind 127.0.0.1 -client 127.0.0.1 -http-port 28500 -dns-port -1 -grpc-port -1 \
	-serf-lan-port 28301 -serf-wan-port 28302 -server-port 28300 > "$work/consul.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -sf http://127.0.0.1:28500/v1/status/leader | grep -q : && break; sleep 0.1; done
cluster=()
for id in 1 2 3; do
	start_broker $((id + 10)) $((29192 + id)) --consul 127.0.0.1:28500 --consul-prefix "bench-$$/" \
		-c min.insync.replicas=2 -c default.replication.factor=3
	cluster+=("$broker_pid")
done
boot=127.0.0.1:29193,127.0.0.1:29194,127.0.0.1:29195
for _ in $(seq 1 100); do "$strata" cluster status --bootstrap-server $boot 2>/dev/null | grep -q 'Brokers: 3' && break; sleep 0.2; done
"$strata" topic create rf3 --partitions $parts --replication-factor 3 --bootstrap-server $boot > /dev/null
"$strata" topic create rf1 --partitions $parts --replication-factor 1 --bootstrap-server $boot > /dev/null
sleep 2 # let every follower open its fetch session before measuring
r3=$(measure "3 brokers, RF=3, min.insync=2" rdkafka -1 rf3 $boot "${cluster[@]}")
r4=$(measure "3 brokers, RF=3, min.insync=2" kgo -1 rf3 $boot "${cluster[@]}")
r5=$(measure "3 brokers, RF=1" kgo 1 rf1 $boot "${cluster[@]}")
for rate in 10000 50000 $((r4 / 2)); do
	latency "3 brokers, RF=3, acks=all" -1 rf3 $boot "$rate"
done
echo "# done $(date -u); $(uptime)" >> "$out"
cat "$out"
