package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// ackRec is one acknowledged record: its value, its per-partition sequence
// number in its producer, the offset the broker answered, and when.
type ackRec struct {
	value  string
	seq    int64
	offset int64
	at     time.Time
}

// ledger is what one producer (tag) had acknowledged, per partition, in the
// order the acknowledgements came.
type ledger struct {
	tag string

	mu struct {
		sync.Mutex
		acked map[int32][]ackRec
		total int
	}
	changed signal
}

func newLedger(tag string) *ledger {
	l := &ledger{tag: tag}
	l.mu.acked = map[int32][]ackRec{}
	return l
}

// value is the record value for seq on partition p: unique per tag,
// partition and sequence, padded to pad bytes.
func (l *ledger) value(p int32, seq int64, pad int) string {
	v := fmt.Sprintf("%s/%d/%09d/", l.tag, p, seq)
	if len(v) < pad {
		v += strings.Repeat("x", pad-len(v))
	}
	return v
}

// parseValue splits a value made by ledger.value.
func parseValue(v string) (tag string, p int32, seq int64, ok bool) {
	parts := strings.SplitN(v, "/", 4)
	if len(parts) < 4 {
		return "", 0, 0, false
	}
	pn, err1 := strconv.ParseInt(parts[1], 10, 32)
	sn, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return parts[0], int32(pn), sn, true
}

func (l *ledger) ack(p int32, r ackRec) {
	l.mu.Lock()
	l.mu.acked[p] = append(l.mu.acked[p], r)
	l.mu.total++
	l.mu.Unlock()
	l.changed.fire()
}

// total is the number of acknowledged records.
func (l *ledger) total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.total
}

// acked is a copy of partition p's acknowledgements.
func (l *ledger) acked(p int32) []ackRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ackRec(nil), l.mu.acked[p]...)
}

// waitTotal waits until at least n records are acknowledged.
func (l *ledger) waitTotal(t *testing.T, n int, timeout time.Duration, why string) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := l.changed.wait()
		got := l.total()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: %d of %d records acknowledged within %v", why, got, n, timeout)
		}
	}
}

// batchWrite is one produce batch a broker acknowledged (kgo's
// OnProduceBatchWritten): who acknowledged it, when, for which partition.
type batchWrite struct {
	partition int32
	node      int32
	at        time.Time
}

// loadProducer is a continuous acks=all idempotent kgo producer writing
// round-robin over a topic's partitions at a steady pace, keeping a ledger
// of acknowledged records and, through kgo's hook, which broker
// acknowledged each batch.
type loadProducer struct {
	t          *testing.T
	cl         *kgo.Client
	topic      string
	partitions int32
	led        *ledger
	pad        int
	every      time.Duration // one record per partition per tick

	cancel context.CancelFunc
	done   chan struct{}

	mu struct {
		sync.Mutex
		failures []error
		writes   []batchWrite
	}
	wrote signal
}

// OnProduceBatchWritten implements kgo.HookProduceBatchWritten.
func (lp *loadProducer) OnProduceBatchWritten(meta kgo.BrokerMetadata, topic string, partition int32, _ kgo.ProduceBatchMetrics) {
	if topic != lp.topic {
		return
	}
	lp.mu.Lock()
	lp.mu.writes = append(lp.mu.writes, batchWrite{partition: partition, node: meta.NodeID, at: time.Now()})
	lp.mu.Unlock()
	lp.wrote.fire()
}

var _ kgo.HookProduceBatchWritten = (*loadProducer)(nil)

// loadOptions tune startLoad.
type loadOptions struct {
	tag   string        // value prefix; default "load"
	every time.Duration // default 5ms: 200 records/s per partition
	pad   int           // value size; default 100 bytes
	opts  []kgo.Opt
}

// startLoad starts producing to topic; stop it with stop.
func startLoad(t *testing.T, c *testenv.Cluster, topic string, partitions int32, o loadOptions) *loadProducer {
	t.Helper()
	if o.tag == "" {
		o.tag = "load"
	}
	if o.every == 0 {
		o.every = 5 * time.Millisecond
	}
	if o.pad == 0 {
		o.pad = 100
	}
	lp := &loadProducer{t: t, topic: topic, partitions: partitions, led: newLedger(o.tag), pad: o.pad, every: o.every, done: make(chan struct{})}
	opts := append([]kgo.Opt{
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(2 * time.Minute),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.MaxBufferedRecords(2000),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.WithHooks(lp),
	}, o.opts...)
	lp.cl = c.Client(t, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	lp.cancel = cancel
	go lp.run(ctx)
	t.Cleanup(func() { lp.halt() })
	return lp
}

func (lp *loadProducer) run(ctx context.Context) {
	defer close(lp.done)
	tick := time.NewTicker(lp.every)
	defer tick.Stop()
	next := make([]int64, lp.partitions)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for p := range lp.partitions {
			seq := next[p]
			next[p]++
			r := &kgo.Record{Partition: p, Value: []byte(lp.led.value(p, seq, lp.pad))}
			lp.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						lp.mu.Lock()
						lp.mu.failures = append(lp.mu.failures, fmt.Errorf("%s-%d seq %d: %w", lp.topic, r.Partition, seq, err))
						lp.mu.Unlock()
					}
					return
				}
				lp.led.ack(r.Partition, ackRec{value: string(r.Value), seq: seq, offset: r.Offset, at: time.Now()})
			})
		}
	}
}

// halt stops producing and waits for every outstanding record's outcome.
func (lp *loadProducer) halt() {
	lp.cancel()
	<-lp.done
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lp.cl.Flush(ctx)
}

// stop halts the producer and logs what it did.
func (lp *loadProducer) stop() {
	lp.t.Helper()
	lp.halt()
	lp.t.Logf("producer %s: %d records acknowledged, %d failed", lp.led.tag, lp.led.total(), len(lp.failures()))
}

func (lp *loadProducer) failures() []error {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return append([]error(nil), lp.mu.failures...)
}

// requireNoFailures fails the test if any record was not delivered: with
// a two-minute delivery timeout, a failure means the cluster refused a
// partition for that long.
func (lp *loadProducer) requireNoFailures() {
	lp.t.Helper()
	if f := lp.failures(); len(f) > 0 {
		lp.t.Errorf("%d records failed; first: %v", len(f), f[0])
	}
}

// waitWrite waits for the first batch of partition acknowledged after
// `after` by a broker other than notNode, and returns when it came.
func (lp *loadProducer) waitWrite(partition, notNode int32, after time.Time, timeout time.Duration) (batchWrite, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := lp.wrote.wait()
		lp.mu.Lock()
		for _, w := range lp.mu.writes {
			if w.partition == partition && w.node != notNode && w.at.After(after) {
				lp.mu.Unlock()
				return w, true
			}
		}
		lp.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return batchWrite{}, false
		}
	}
}

// writers lists the brokers that acknowledged batches of partition after
// `after`, in order of first acknowledgement.
func (lp *loadProducer) writers(partition int32, after time.Time) []int32 {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	var out []int32
	for _, w := range lp.mu.writes {
		if w.partition == partition && w.at.After(after) && (len(out) == 0 || out[len(out)-1] != w.node) {
			out = append(out, w.node)
		}
	}
	return out
}

// readRec is one record read back.
type readRec struct {
	offset int64
	epoch  int32
	value  string
}

// readTopic consumes every partition of topic from its start up to the
// high watermark it lists first, through a fresh client on every live
// broker.
func readTopic(t *testing.T, c *testenv.Cluster, topic string, partitions int32) map[int32][]readRec {
	t.Helper()
	ctx := testenv.Context(t, 3*time.Minute)
	var seeds []string
	for _, b := range c.Brokers {
		if b.Running() && !b.Paused() {
			seeds = append(seeds, b.Addr)
		}
	}
	adm := kadm.NewClient(seedClient(t, seeds))
	var ends kadm.ListedOffsets
	var err error
	for attempt := 0; ; attempt++ {
		ends, err = adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || attempt == 20 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	want := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		want[o.Partition] = o.Offset
		offsets[o.Partition] = kgo.NewOffset().AtStart()
	})
	if len(want) != int(partitions) {
		t.Fatalf("%s: end offsets of %d partitions, want %d", topic, len(want), partitions)
	}
	cl := seedClient(t, seeds, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond))
	out := map[int32][]readRec{}
	next := map[int32]int64{}
	done := func() bool {
		for p, end := range want {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: at %v of %v: %v", topic, next, want, ctx.Err())
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s-%d: %v (retrying)", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= want[r.Partition] {
				return
			}
			out[r.Partition] = append(out[r.Partition], readRec{offset: r.Offset, epoch: r.LeaderEpoch, value: string(r.Value)})
			next[r.Partition] = r.Offset + 1
		})
	}
	return out
}

// checkLedgers reads topic back and checks, for every ledger, that each
// acknowledged record is there exactly once, at the offset it was
// acknowledged with, and in its producer's order per partition; and that no
// value at all (acknowledged or not) is in a partition twice. It returns
// what it read.
func checkLedgers(t *testing.T, c *testenv.Cluster, topic string, partitions int32, ledgers ...*ledger) map[int32][]readRec {
	t.Helper()
	read := readTopic(t, c, topic, partitions)
	total, records := 0, 0
	for p := range partitions {
		at := map[string][]int64{}
		for _, r := range read[p] {
			at[r.value] = append(at[r.value], r.offset)
			records++
		}
		for v, offs := range at {
			if len(offs) > 1 {
				t.Errorf("%s-%d: value %.40q stored %d times, at offsets %v", topic, p, v, len(offs), offs)
			}
		}
		for _, l := range ledgers {
			acks := l.acked(p)
			total += len(acks)
			lost := 0
			for _, a := range acks {
				offs := at[a.value]
				switch {
				case len(offs) == 0:
					if lost < 5 {
						t.Errorf("%s-%d: acknowledged record %s seq %d at offset %d is lost", topic, p, l.tag, a.seq, a.offset)
					}
					lost++
				case a.offset >= 0 && offs[0] != a.offset:
					t.Errorf("%s-%d: record %s seq %d acknowledged at offset %d is at %d", topic, p, l.tag, a.seq, a.offset, offs[0])
				}
			}
			if lost > 0 {
				t.Errorf("%s-%d: %d of %d acknowledged %s records lost", topic, p, lost, len(acks), l.tag)
			}
			// Producer order: this producer's records, by offset, carry
			// increasing sequence numbers.
			last := int64(-1)
			for _, r := range read[p] {
				tag, rp, seq, ok := parseValue(r.value)
				if !ok || tag != l.tag {
					continue
				}
				if rp != p {
					t.Errorf("%s-%d: offset %d holds a record produced to partition %d", topic, p, r.offset, rp)
				}
				if seq <= last {
					t.Errorf("%s-%d: %s seq %d at offset %d after seq %d: out of order", topic, p, l.tag, seq, r.offset, last)
				}
				last = seq
			}
		}
	}
	t.Logf("%s: %d acknowledged records checked against %d records read back", topic, total, records)
	return read
}

// seedClient is a kgo client on the given seeds, closed at cleanup.
func seedClient(t *testing.T, seeds []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
