package broker_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// TestTxnClusterCoordinatorKilled runs transactions on three real brokers
// (testenv.StartCluster, Consul) and kills the transaction coordinator —
// the leader of the transactional id's __transaction_state partition — with
// SIGKILL while a transaction is open. The controller elects a new leader,
// which loads the partition and becomes the coordinator; the producer's
// EndTransaction goes there. Whether that transaction commits or aborts, a
// read_committed reader sees it whole or not at all, never half, and the
// transactions before and after it exactly once. Markers and KIP-890
// verification cross brokers here (WriteTxnMarkers, AddPartitionsToTxn v4).
func TestTxnClusterCoordinatorKilled(t *testing.T) {
	c := startTxnCluster(t)
	const topic = "cluster-txn"
	two := "2"
	c.CreateTopic(topic, 3, 3, map[string]*string{"min.insync.replicas": &two})
	prod := c.Client(t, kgo.TransactionalID("cluster-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(2*time.Minute))
	values := func(prefix string) []string {
		var out []string
		for i := 0; i < 9; i++ {
			out = append(out, fmt.Sprintf("%s-%d", prefix, i))
		}
		return out
	}
	produceTxn(t, prod, topic, 3, true, values("before")...)

	ctx := testenv.Context(t, 3*time.Minute)
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, v := range values("during") {
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := c.Admin(t)
	d, err := adm.DescribeTransactions(ctx, "cluster-tx")
	if err != nil || d["cluster-tx"].Err != nil || d["cluster-tx"].State != "Ongoing" {
		t.Fatalf("describe before the kill: %+v %v", d, err)
	}
	victim := d["cluster-tx"].Coordinator
	t.Logf("killing coordinator broker %d", victim)
	c.Broker(victim).Kill()

	endErr := prod.EndTransaction(ctx, kgo.TryCommit)
	if endErr != nil {
		// The commit may be lost with the coordinator (or the producer
		// fenced); the transaction must then abort cleanly.
		t.Logf("commit after the coordinator died: %v", endErr)
		if err := prod.AbortBufferedRecords(ctx); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TryAbort); err != nil {
			t.Logf("abort: %v; starting a new producer", err)
		}
		prod = c.Client(t, kgo.TransactionalID("cluster-tx"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	c.Broker(victim).Restart()
	produceTxn(t, prod, topic, 3, true, values("after")...)
	endSentinel(t, prod, topic, 3)

	got := counts(readClientToEnd(t, c.Client(t, readOpts(topic, kgo.ReadCommitted())...), topic, 3))
	for _, v := range append(values("before"), values("after")...) {
		if got[v] != 1 {
			t.Errorf("%s read %d times", v, got[v])
		}
	}
	during := 0
	for _, v := range values("during") {
		if got[v] > 1 {
			t.Errorf("%s read %d times", v, got[v])
		}
		during += got[v]
	}
	if during != 0 && during != 9 {
		t.Errorf("the interrupted transaction is half visible: %d of 9 records", during)
	}
	if endErr == nil && during != 9 {
		t.Errorf("EndTransaction committed but %d of 9 records are visible", during)
	}
	t.Logf("interrupted transaction: %d of 9 visible (commit error: %v)", during, endErr)
}

// startTxnCluster starts three brokers with small, fully replicated
// internal topics.
func startTxnCluster(t *testing.T) *testenv.Cluster {
	t.Helper()
	if os.Getenv("STRATA_CONSUL_BIN") == "" && os.Getenv("CI") == "" {
		t.Skip("STRATA_CONSUL_BIN is not set (scripts/install-tools.sh builds Consul)")
	}
	return testenv.StartCluster(t, testenv.ClusterOptions{Brokers: 3, Configs: []string{
		"transaction.state.log.num.partitions=4", "offsets.topic.num.partitions=4",
		"transaction.state.log.replication.factor=3", "transaction.state.log.min.isr=2",
		"offsets.topic.replication.factor=3", "group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=300",
		// A dead follower leaves the ISR after this long (acks=all waits
		// for it until then, as in Kafka).
		"replica.lag.time.max.ms=3000",
	}})
}

// TestTxnClusterETLCoordinatorKilled is the GroupTransactSession chain on
// three brokers: two workers consume "in" and produce to the output with
// their offsets in each transaction; midway the broker coordinating the
// first worker's transactions is killed (SIGKILL) and later restarted.
// Every input record reaches a read_committed reader of the output exactly
// once.
func TestTxnClusterETLCoordinatorKilled(t *testing.T) {
	c := startTxnCluster(t)
	c.CreateTopic("in", 3, 3, nil)
	c.CreateTopic("cluster-etl-out", 3, 3, nil)
	const n = 900
	plain := c.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	pctx := testenv.Context(t, 2*time.Minute)
	input := func(from, to int) {
		t.Helper()
		var recs []*kgo.Record
		for i := from; i < to; i++ {
			recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 3), Value: []byte(fmt.Sprintf("v-%d", i))})
		}
		if err := plain.ProduceSync(pctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Half now, half after the kill, so the chain works across it.
	input(0, n/2)
	seeds := c.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	// A worker whose session fails for good (fenced, say, if its
	// transaction outlived its timeout during the failover) starts a new
	// one, as an application restarting it would.
	worker := func(id string, abortEvery int) {
		for ctx.Err() == nil {
			if err := etlWorker(ctx, t, seeds, id, "cluster-etl-out", abortEvery, 0); err != nil {
				t.Logf("%s restarts: %v", id, err)
			}
		}
		errs <- nil
	}
	go worker("cetl-A", 0)
	go worker("cetl-B", 4)

	adm := c.Admin(t)
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case err := <-errs:
				t.Fatalf("worker stopped while waiting for %s: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	wait("a first commit", func() bool { return groupCaughtUp(ctx, adm, "etl", "in", true) })
	var victim int32 = -1
	wait("cetl-A's coordinator", func() bool {
		d, err := adm.DescribeTransactions(ctx, "cetl-A")
		if err != nil || d["cetl-A"].Err != nil {
			return false
		}
		victim = d["cetl-A"].Coordinator
		return true
	})
	t.Logf("killing broker %d (coordinator of cetl-A)", victim)
	c.Broker(victim).Kill()
	input(n/2, n)
	atKill := committedSum(ctx, adm, "etl", "in")
	wait("progress without it", func() bool { return committedSum(ctx, adm, "etl", "in") > atKill })
	c.Broker(victim).Restart()
	wait("every input offset committed", func() bool { return groupCaughtUp(ctx, adm, "etl", "in", false) })
	cancel()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	end := c.Client(t, kgo.TransactionalID("cetl-end"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	endSentinel(t, end, "cluster-etl-out", 3)
	got := counts(readClientToEnd(t, c.Client(t, readOpts("cluster-etl-out", kgo.ReadCommitted())...), "cluster-etl-out", 3))
	for i := 0; i < n; i++ {
		if v := fmt.Sprintf("out-v-%d", i); got[v] != 1 {
			t.Errorf("%s read %d times", v, got[v])
		}
	}
	if len(got) != n {
		t.Errorf("read %d distinct output values, want %d", len(got), n)
	}
}
