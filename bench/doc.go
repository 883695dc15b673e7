// Package bench measures Strata's produce and consume throughput against two
// references driven by the same workload in the same run:
//
//   - raw: the floor-level cost of the job — the same bytes, in batches of the
//     size the Kafka client actually sends, pushed over loopback TCP and
//     appended to one file per partition (produce), or read from those files
//     with sendfile and streamed to a reader (consume). No Kafka protocol.
//   - kfake: franz-go's in-process fake broker with DataDir persistence.
//
// Strata runs in-process (testenv.StartBroker) and, for the main case, as a
// real `strata serve` process (testenv.StartProcess).
//
// Everything heavy lives in Benchmark functions, so `go test ./bench/` only
// runs the small harness test. BENCHMARKS.md at the repository root has the
// commands and the measured numbers.
package bench
