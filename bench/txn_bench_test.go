package bench

// Transaction benchmarks (issue 9, "Benchmarks"): produce throughput of a
// transactional producer (100 and 10,000 records per transaction) against
// an idempotent one in the same run, and the commit latency p50/p99: the
// EndTransaction call after the transaction's records are flushed (EndTxn
// answers once PrepareCommit is written; the markers follow). franz-go against an
// in-process Strata with its data under b.TempDir().
//
//	go test ./bench/ -run '^$' -bench '^BenchmarkTxnProduce$' -benchtime=20000x -count 3
//
// Each iteration is one record of 100 bytes; records/s and the commit
// latency quantiles are reported as metrics.

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

func BenchmarkTxnProduce(b *testing.B) {
	for _, mode := range []struct {
		name  string
		perTx int // 0: idempotent, no transactions
	}{{"idempotent", 0}, {"txn-100", 100}, {"txn-10000", 10000}} {
		b.Run(mode.name, func(b *testing.B) {
			srv := testenv.StartBroker(b, broker.Options{DataDir: b.TempDir(), Settings: map[string]string{
				"transaction.state.log.num.partitions": "1", "offsets.topic.num.partitions": "1"}})
			testenv.CreateTopic(b, srv.Addr, "bench-txn", 3, nil)
			opts := []kgo.Opt{kgo.DefaultProduceTopic("bench-txn"), kgo.ProducerLinger(0)}
			if mode.perTx > 0 {
				opts = append(opts, kgo.TransactionalID(fmt.Sprintf("bench-%s", mode.name)))
			}
			cl := newClient(b, srv.Addr, opts...)
			ctx := testenv.Context(b, 10*time.Minute)
			value := make([]byte, 100)
			var commits []time.Duration
			b.SetBytes(int64(len(value)))
			b.ResetTimer()
			start := time.Now()
			inTx := 0
			for i := 0; i < b.N; i++ {
				if mode.perTx > 0 && inTx == 0 {
					if err := cl.BeginTransaction(); err != nil {
						b.Fatal(err)
					}
				}
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err != nil {
						b.Errorf("produce: %v", err)
					}
				})
				inTx++
				if mode.perTx > 0 && (inTx == mode.perTx || i == b.N-1) {
					if err := cl.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					t0 := time.Now()
					if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
						b.Fatal(err)
					}
					commits = append(commits, time.Since(t0))
					inTx = 0
				}
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			if len(commits) > 0 {
				slices.Sort(commits)
				q := func(p float64) float64 { return float64(commits[int(p*float64(len(commits)-1))].Microseconds()) / 1000 }
				b.ReportMetric(q(0.5), "commit-p50-ms")
				b.ReportMetric(q(0.99), "commit-p99-ms")
			}
		})
	}
}
