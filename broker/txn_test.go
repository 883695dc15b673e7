package broker_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// Transaction tests with real franz-go clients (kgo transactional producers,
// GroupTransactSession) against an in-process broker. The end of a stream is
// found with a sentinel: a last committed transaction writes "END" to every
// partition, and a reader stops once it saw END everywhere, so "nothing
// else arrived" is proven by order, not by waiting.

// txnSettings keep the internal topics small so a test broker starts fast.
func txnSettings(extra ...string) map[string]string {
	s := map[string]string{
		"group.initial.rebalance.delay.ms":     "0",
		"group.min.session.timeout.ms":         "300",
		"offsets.topic.num.partitions":         "4",
		"transaction.state.log.num.partitions": "4",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i]] = extra[i+1]
	}
	return s
}

func startTxnBroker(t *testing.T, dir string, clk clock.Clock, extra ...string) *testenv.InProcess {
	t.Helper()
	return testenv.StartBroker(t, broker.Options{DataDir: dir, Clock: clk, Settings: txnSettings(extra...)})
}

// txnProducer is a transactional kgo client for one transactional id.
func txnProducer(t *testing.T, addr, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return testenv.Client(t, addr, append([]kgo.Opt{
		kgo.TransactionalID(id),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(60 * time.Second),
	}, opts...)...)
}

// produceTxn writes values (value i to partition i%partitions) in one
// transaction and commits or aborts it.
func produceTxn(t *testing.T, cl *kgo.Client, topic string, partitions int32, commit bool, values ...string) {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, v := range values {
		r := &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(v)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %q: %v", v, err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// endSentinel commits a transaction writing END to every partition.
func endSentinel(t *testing.T, cl *kgo.Client, topic string, partitions int32) {
	t.Helper()
	vals := make([]string, partitions)
	for i := range vals {
		vals[i] = "END"
	}
	produceTxn(t, cl, topic, partitions, true, vals...)
}

// readToEnd consumes topic from the start with the given isolation until
// END was read on every partition, and returns the other values.
func readToEnd(t *testing.T, addr, topic string, partitions int32, iso kgo.IsolationLevel) []string {
	t.Helper()
	return readClientToEnd(t, testenv.Client(t, addr, readOpts(topic, iso)...), topic, partitions)
}

func readOpts(topic string, iso kgo.IsolationLevel) []kgo.Opt {
	return []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(iso), kgo.FetchMaxWait(200 * time.Millisecond)}
}

// readClientToEnd is readToEnd with a consuming client made by the caller.
func readClientToEnd(t *testing.T, cl *kgo.Client, topic string, partitions int32) []string {
	t.Helper()
	ctx := testenv.Context(t, 2*time.Minute)
	ended := map[int32]bool{}
	var out []string
	for len(ended) < int(partitions) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: END seen on %v of %d partitions; read %d values", topic, ended, partitions, len(out))
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "END" {
				ended[r.Partition] = true
				return
			}
			out = append(out, string(r.Value))
		})
	}
	return out
}

// counts tallies values by prefix up to the first '-'.
func counts(vals []string) map[string]int {
	m := map[string]int{}
	for _, v := range vals {
		m[v]++
	}
	return m
}

// TestTxnCommitAbortIsolation: a kgo transactional producer alternates
// committed and aborted transactions; a read_committed consumer sees each
// committed record exactly once and no aborted one, a read_uncommitted
// consumer sees both (kgo drops the markers themselves).
func TestTxnCommitAbortIsolation(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "out", 3, nil)
	cl := txnProducer(t, b.Addr, "tx-iso")
	var committed, aborted []string
	for round := 0; round < 6; round++ {
		commit := round%2 == 0
		var vals []string
		for i := 0; i < 7; i++ {
			kind := "a"
			if commit {
				kind = "c"
			}
			vals = append(vals, fmt.Sprintf("%s-%d-%d", kind, round, i))
		}
		produceTxn(t, cl, "out", 3, commit, vals...)
		if commit {
			committed = append(committed, vals...)
		} else {
			aborted = append(aborted, vals...)
		}
	}
	endSentinel(t, cl, "out", 3)

	rc := counts(readToEnd(t, b.Addr, "out", 3, kgo.ReadCommitted()))
	for _, v := range committed {
		if rc[v] != 1 {
			t.Errorf("read_committed saw committed %q %d times", v, rc[v])
		}
	}
	for _, v := range aborted {
		if rc[v] != 0 {
			t.Errorf("read_committed saw aborted %q", v)
		}
	}
	if len(rc) != len(committed) {
		t.Errorf("read_committed read %d distinct values, want %d", len(rc), len(committed))
	}
	ru := counts(readToEnd(t, b.Addr, "out", 3, kgo.ReadUncommitted()))
	for _, v := range append(append([]string(nil), committed...), aborted...) {
		if ru[v] != 1 {
			t.Errorf("read_uncommitted saw %q %d times", v, ru[v])
		}
	}
	t.Logf("read_committed %d distinct, read_uncommitted %d distinct", len(rc), len(ru))
	if t.Failed() {
		t.Logf("read_committed: %v", strings.Join(keys(rc), " "))
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// etlWorker runs a franz-go GroupTransactSession reading "in" and writing
// "out-"+value to the same partition of out, committing the consumed
// offsets in each transaction. abortEvery > 0 aborts every n-th
// transaction instead; crashAfter > 0 closes the client in the middle of
// transaction crashAfter+1 (records produced, nothing ended), as a process
// dying would leave it.
func etlWorker(ctx context.Context, t *testing.T, seeds []string, id, out string, abortEvery, crashAfter int) error {
	return etlWorkerUp(ctx, t, seeds, id, out, abortEvery, crashAfter, nil)
}

// etlWorkerUp is etlWorker closing committed (if not nil) after its first
// committed transaction.
func etlWorkerUp(ctx context.Context, t *testing.T, seeds []string, id, out string, abortEvery, crashAfter int, committed chan<- struct{}) error {
	s, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(seeds...),
		kgo.TransactionalID(id),
		kgo.TransactionTimeout(time.Minute),
		kgo.ConsumerGroup("etl"),
		kgo.ConsumeTopics("in"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.SessionTimeout(3*time.Second),
		kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer s.Close()
	for round := 1; ctx.Err() == nil; round++ {
		fs := s.PollRecords(ctx, 40)
		if ctx.Err() != nil {
			return nil
		}
		if err := s.Begin(); err != nil {
			return fmt.Errorf("%s: begin: %w", id, err)
		}
		crash := crashAfter > 0 && round > crashAfter && fs.NumRecords() > 0
		fs.EachRecord(func(r *kgo.Record) {
			rec := &kgo.Record{Topic: out, Partition: r.Partition, Value: append([]byte("out-"), r.Value...)}
			if crash {
				// Written for sure before the "crash".
				if err := s.ProduceSync(ctx, rec).FirstErr(); err != nil {
					t.Logf("%s: produce before crashing: %v", id, err)
				}
				return
			}
			s.Produce(ctx, rec, nil)
		})
		if crash {
			return errCrashed // deferred Close: the transaction stays open
		}
		try := kgo.TryCommit
		if abortEvery > 0 && round%abortEvery == 0 {
			try = kgo.TryAbort
		}
		ok, err := s.End(ctx, try)
		if err != nil && ctx.Err() == nil {
			t.Logf("%s: end (commit %v): %v", id, try, err)
		}
		if ok && try == kgo.TryCommit && fs.NumRecords() > 0 && committed != nil {
			close(committed)
			committed = nil
		}
	}
	return nil
}

var errCrashed = fmt.Errorf("worker crashed on purpose")

// groupCaughtUp reports whether group's committed offsets of topic reach
// the topic's end offsets (any reports whether one partition has a
// committed offset at all).
func groupCaughtUp(ctx context.Context, adm *kadm.Client, group, topic string, any bool) bool {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return false
	}
	off, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	all, some := true, false
	ends.Each(func(o kadm.ListedOffset) {
		c, ok := off.Lookup(topic, o.Partition)
		all = all && ok && c.At == o.Offset
		some = some || (ok && c.At > 0)
	})
	if any {
		return some
	}
	return all
}

// committedSum adds up group's committed offsets of topic (-1 on error).
func committedSum(ctx context.Context, adm *kadm.Client, group, topic string) int64 {
	off, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var n int64
	off.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// TestTxnGroupTransactSessionETL is consume-transform-produce with
// franz-go's GroupTransactSession: two workers share the group, one aborts
// every third transaction, a third one dies in the middle of a transaction
// and comes back under the same transactional id (fencing the zombie
// transaction, which the coordinator aborts). A read_committed reader of
// the output sees every input record exactly once.
func TestTxnGroupTransactSessionETL(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "in", 3, nil)
	testenv.CreateTopic(t, b.Addr, "etl-out", 3, nil)
	const n = 600
	plain := testenv.Client(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	pctx := testenv.Context(t, 60*time.Second)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &kgo.Record{Topic: "in", Partition: int32(i % 3), Value: []byte(fmt.Sprintf("v-%d", i))})
	}
	if err := plain.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seeds := []string{b.Addr}
	errs := make(chan error, 4)
	// etl-C first and alone: it owns every partition and dies in its third
	// transaction, leaving it open. It comes back, still alone, so it is
	// sure to find input and fence its zombie; the others join once it has
	// committed again (started together, they could finish the input before
	// the crash or before the restart ever initialised its producer).
	if err := etlWorker(ctx, t, seeds, "etl-C", "etl-out", 0, 2); err != errCrashed {
		t.Fatalf("etl-C did not crash as planned: %v", err)
	}
	restarted := make(chan struct{})
	go func() { errs <- etlWorkerUp(ctx, t, seeds, "etl-C", "etl-out", 0, 0, restarted) }()
	select {
	case <-restarted:
	case err := <-errs:
		t.Fatalf("etl-C stopped after its restart: %v", err)
	case <-ctx.Done():
		t.Fatal("etl-C did not commit after its restart")
	}
	go func() { errs <- etlWorker(ctx, t, seeds, "etl-A", "etl-out", 3, 0) }()
	go func() { errs <- etlWorker(ctx, t, seeds, "etl-B", "etl-out", 0, 0) }()

	adm := kadm.NewClient(testenv.Client(t, b.Addr))
	for !groupCaughtUp(ctx, adm, "etl", "in", false) {
		select {
		case err := <-errs:
			t.Fatalf("worker stopped early: %v", err)
		case <-ctx.Done():
			t.Fatal("timed out before the group committed every input offset")
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	for i := 0; i < 3; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	// etl-C's restart found its transaction open: the coordinator bumped
	// the epoch to fence it and abort, then again for the new instance.
	dt, err := adm.DescribeTransactions(testenv.Context(t, 30*time.Second), "etl-C")
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := dt["etl-C"]; !ok || d.Err != nil || d.ProducerEpoch < 2 {
		t.Fatalf("etl-C after its restart: %+v (want epoch >= 2: fenced, then re-initialised)", dt)
	}
	endSentinel(t, txnProducer(t, b.Addr, "etl-end"), "etl-out", 3)
	got := counts(readToEnd(t, b.Addr, "etl-out", 3, kgo.ReadCommitted()))
	for i := 0; i < n; i++ {
		if v := fmt.Sprintf("out-v-%d", i); got[v] != 1 {
			t.Errorf("%s read %d times", v, got[v])
		}
	}
	if len(got) != n {
		t.Errorf("read %d distinct output values, want %d", len(got), n)
	}
	all := counts(readToEnd(t, b.Addr, "etl-out", 3, kgo.ReadUncommitted()))
	t.Logf("output: %d committed values; %d records in the log counting aborted ones", len(got), sum(all))
}

func sum(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// TestTxnZombieFencing: two producers share a transactional id. The second
// one's InitProducerId bumps the epoch, which aborts the first one's open
// transaction and fences it: its next produce and its commit fail. Only
// the second producer's records are committed.
func TestTxnZombieFencing(t *testing.T) {
	b := startTxnBroker(t, t.TempDir(), nil)
	testenv.CreateTopic(t, b.Addr, "zombie", 1, nil)
	ctx := testenv.Context(t, 60*time.Second)
	old := txnProducer(t, b.Addr, "shared")
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := txnProducer(t, b.Addr, "shared")
	produceTxn(t, fresh, "zombie", 1, true, "fresh-1", "fresh-2")

	err := old.ProduceSync(ctx, &kgo.Record{Topic: "zombie", Value: []byte("zombie-2")}).FirstErr()
	if err == nil {
		err = old.EndTransaction(ctx, kgo.TryCommit)
	}
	if err == nil {
		t.Fatal("the fenced producer still produced and committed")
	}
	t.Logf("fenced producer: %v", err)
	endSentinel(t, fresh, "zombie", 1)
	got := counts(readToEnd(t, b.Addr, "zombie", 1, kgo.ReadCommitted()))
	if got["fresh-1"] != 1 || got["fresh-2"] != 1 || got["zombie-1"] != 0 || got["zombie-2"] != 0 || len(got) != 2 {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestTxnTimeoutAbort: a producer that hangs inside its transaction is
// aborted once transaction.timeout.ms passes on the broker's clock (a
// clock.Fake stepped by the test, no sleeping): the abort markers move the
// LSO, read_committed readers never see its records, and the producer is
// fenced (its epoch was bumped).
func TestTxnTimeoutAbort(t *testing.T) {
	fake := clock.NewFake(time.Now())
	b := startTxnBroker(t, t.TempDir(), fake)
	testenv.CreateTopic(t, b.Addr, "hang", 2, nil)
	ctx := testenv.Context(t, 60*time.Second)
	hung := txnProducer(t, b.Addr, "hangs", kgo.TransactionTimeout(5*time.Second))
	if err := hung.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if err := hung.ProduceSync(ctx, &kgo.Record{Topic: "hang", Partition: p, Value: []byte("hung")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(testenv.Client(t, b.Addr))
	describe := func() kadm.DescribedTransaction {
		d, err := adm.DescribeTransactions(ctx, "hangs")
		if err != nil {
			t.Fatal(err)
		}
		return d["hangs"]
	}
	before := describe()
	if before.State != "Ongoing" {
		t.Fatalf("before the timeout: %+v", before)
	}
	// Less than the timeout: nothing happens at the first check.
	fake.Advance(10*time.Second - time.Millisecond)
	if d := describe(); d.State != "Ongoing" {
		t.Fatalf("aborted before its timeout: %+v", d)
	}
	// The check at 10 s finds it 10 s old, past its 5 s.
	fake.Advance(time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for d := describe(); d.State != "CompleteAbort"; d = describe() {
		if time.Now().After(deadline) {
			t.Fatalf("not aborted after its timeout: %+v", d)
		}
		time.Sleep(10 * time.Millisecond) // markers are written in the background
	}
	if d := describe(); d.ProducerEpoch <= before.ProducerEpoch {
		t.Fatalf("epoch not bumped by the timeout abort: %d → %d", before.ProducerEpoch, d.ProducerEpoch)
	}
	if err := hung.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the timed-out producer committed")
	}
	other := txnProducer(t, b.Addr, "after-hang")
	produceTxn(t, other, "hang", 2, true, "ok-0", "ok-1")
	endSentinel(t, other, "hang", 2)
	got := counts(readToEnd(t, b.Addr, "hang", 2, kgo.ReadCommitted()))
	if got["hung"] != 0 || got["ok-0"] != 1 || got["ok-1"] != 1 {
		t.Fatalf("read_committed: %v", got)
	}
}

// TestTxnTieredReadCommitted: transactions whose segments were copied to
// the bucket and deleted locally are read back with read_committed from
// the bucket: the transaction index travels in each segment's index bundle,
// so aborted records stay hidden there too, including transactions whose
// abort marker is segments after their data. Only the bundles of segments
// that hold an aborted transaction are fetched for it (the manifest counts
// them), not one per segment.
func TestTxnTieredReadCommitted(t *testing.T) {
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	store := &getLog{Storage: local}
	b := testenv.StartBroker(t, broker.Options{Remote: store, Settings: txnSettings("remote.fetch.chunk.bytes", "65536")})
	createTopic(t, b.Addr, "tiered-txn", 2, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("16384"),
		"local.retention.bytes": strp("1"),
	})
	cl := txnProducer(t, b.Addr, "tiered-tx", kgo.ProducerBatchMaxBytes(4096), kgo.ProducerBatchCompression(kgo.NoCompression()))
	var committed, aborted []string
	pad := strings.Repeat("p", 300)
	for round := 0; round < 10; round++ {
		commit := round%3 != 1
		var vals []string
		for i := 0; i < 40; i++ {
			vals = append(vals, fmt.Sprintf("%v-%d-%d-%s", commit, round, i, pad))
		}
		produceTxn(t, cl, "tiered-txn", 2, commit, vals...)
		if commit {
			committed = append(committed, vals...)
		} else {
			aborted = append(aborted, vals...)
		}
	}
	endSentinel(t, cl, "tiered-txn", 2)
	ctx := testenv.Context(t, 60*time.Second)
	b.TieringPass(ctx)
	if start := listOffset(t, b.Addr, "tiered-txn", -4); start[0] < 100 || start[1] < 100 {
		t.Fatalf("local log starts %v: the transactions did not leave the disk", start)
	}
	store.reset()
	rc := counts(readToEnd(t, b.Addr, "tiered-txn", 2, kgo.ReadCommitted()))
	logs, bundles := store.distinct(".log"), store.distinct(".indexes")
	if bundles == 0 || bundles >= logs {
		t.Errorf("read_committed from the bucket fetched %d index bundles for %d segments: want only the few with aborted transactions", bundles, logs)
	}
	t.Logf("read_committed: %d segments read, %d index bundles fetched", logs, bundles)
	for _, v := range committed {
		if rc[v] != 1 {
			t.Errorf("read_committed: committed %.12s… read %d times", v, rc[v])
		}
	}
	for _, v := range aborted {
		if rc[v] != 0 {
			t.Errorf("read_committed: aborted %.12s… read from the bucket", v)
		}
	}
	ru := counts(readToEnd(t, b.Addr, "tiered-txn", 2, kgo.ReadUncommitted()))
	if len(ru) != len(committed)+len(aborted) {
		t.Errorf("read_uncommitted: %d values, want %d", len(ru), len(committed)+len(aborted))
	}
}

// getLog is a store that records the keys of its GETs.
type getLog struct {
	remotestore.Storage
	mu   sync.Mutex
	keys map[string]bool
}

func (g *getLog) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	g.mu.Lock()
	if g.keys == nil {
		g.keys = map[string]bool{}
	}
	g.keys[key] = true
	g.mu.Unlock()
	return g.Storage.Get(ctx, key, off, n)
}

func (g *getLog) reset() {
	g.mu.Lock()
	g.keys = nil
	g.mu.Unlock()
}

// distinct counts the distinct keys with suffix that were read.
func (g *getLog) distinct(suffix string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for k := range g.keys {
		if strings.HasSuffix(k, suffix) {
			n++
		}
	}
	return n
}
