package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// workload is one produce (or consume) case. Every target gets the same one.
type workload struct {
	size    int    // record value bytes
	parts   int32  // partitions
	acks    string // "1" or "all"
	codec   string // "none" or "lz4"
	records int    // records to move per iteration
}

func (w workload) bytes() int64 { return int64(w.size) * int64(w.records) }

// key names the workload without the target, so references in the same case
// can find what the Kafka client did (see observedBatch).
func (w workload) key() string {
	return fmt.Sprintf("size=%d/parts=%d/acks=%s/codec=%s", w.size, w.parts, w.acks, w.codec)
}

// corpus is pseudo-text that lz4 compresses roughly 2×, so compression costs
// real work and does not turn the benchmark into a memcpy of zeros. Record
// values are windows into it; kgo does not copy or mutate values.
var corpus = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	words := make([][]byte, 2048)
	for i := range words {
		w := make([]byte, 3+r.IntN(8))
		for j := range w {
			w[j] = byte('a' + r.IntN(26))
		}
		words[i] = w
	}
	out := make([]byte, 0, 4<<20)
	for len(out) < 4<<20 {
		out = append(out, words[r.IntN(len(words))]...)
		out = append(out, ' ')
		if r.IntN(8) == 0 {
			out = fmt.Appendf(out, "%d ", r.Uint32())
		}
	}
	return out
}()

// value returns the i'th record's value.
func value(i, size int) []byte {
	off := (i * 7919) % (len(corpus) - size)
	return corpus[off : off+size : off+size]
}

// clientOpts are the kgo settings every target gets. acks=1 must disable
// idempotence (kgo requires it); acks=all keeps kgo's idempotent default.
// Five produce requests may be in flight per broker either way (the
// idempotent maximum), so acks=1 is not handicapped by a window of one.
func clientOpts(addr string, w workload) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(1 << 20),
		kgo.MaxBufferedBytes(32 << 20),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProduceRequestTimeout(30 * time.Second),
		kgo.RecordDeliveryTimeout(2 * time.Minute),
	}
	switch w.acks {
	case "1":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(5))
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	switch w.codec {
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	return opts
}

// createTopic creates topic with w.parts partitions, replication factor 1.
func createTopic(ctx context.Context, addr, topic string, parts int32) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, parts, 1, nil, topic)
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	if resp.Err != nil {
		return fmt.Errorf("create topic %s: %w", topic, resp.Err)
	}
	return nil
}

// result is what one timed run measured.
type result struct {
	records  int64
	bytes    int64 // record value bytes (uncompressed payload)
	elapsed  time.Duration
	recLat   []time.Duration // per-record produce latency (Produce call → ack)
	reqLat   []time.Duration // per-request round trip (write → response read)
	batches  int64           // batches written
	batchLen int64           // their total bytes on the wire (after compression)
	batchRec int64           // their total records
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// produceHooks records produce request round trips and batch sizes.
type produceHooks struct {
	mu       sync.Mutex
	reqLat   []time.Duration
	batches  atomic.Int64
	batchLen atomic.Int64
	batchRec atomic.Int64
}

func (h *produceHooks) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key != 0 || e.Err() != nil { // 0 = Produce
		return
	}
	h.mu.Lock()
	h.reqLat = append(h.reqLat, e.DurationE2E())
	h.mu.Unlock()
}

func (h *produceHooks) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	h.batches.Add(1)
	h.batchLen.Add(int64(m.CompressedBytes))
	h.batchRec.Add(int64(m.NumRecords))
}

// kgoProduce sends w.records records to topic and waits for every ack.
func kgoProduce(ctx context.Context, addr, topic string, w workload) (result, error) {
	hooks := &produceHooks{}
	cl, err := kgo.NewClient(append(clientOpts(addr, w), kgo.DefaultProduceTopic(topic), kgo.WithHooks(hooks))...)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	// Warm the connection and metadata so the timed part is steady state.
	if err := cl.Ping(ctx); err != nil {
		return result{}, err
	}
	lat := make([]time.Duration, w.records)
	var done atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	for i := 0; i < w.records; i++ {
		r := &kgo.Record{Value: value(i, w.size)}
		idx := i
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			lat[idx] = time.Since(r.Timestamp)
			done.Add(1)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return result{}, err
	}
	elapsed := time.Since(start)
	if e := firstErr.Load(); e != nil {
		return result{}, fmt.Errorf("produce: %w", *e)
	}
	if n := done.Load(); n != int64(w.records) {
		return result{}, fmt.Errorf("produce: %d of %d records acknowledged", n, w.records)
	}
	// kgo may run the batch-written hook of the last batches after their
	// records' promises: wait (briefly) for the hooks to catch up.
	for wait := time.Now().Add(5 * time.Second); hooks.batchRec.Load() < int64(w.records) && time.Now().Before(wait); {
		time.Sleep(time.Millisecond)
	}
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	return result{
		records: int64(w.records), bytes: w.bytes(), elapsed: elapsed,
		recLat: lat, reqLat: hooks.reqLat,
		batches: hooks.batches.Load(), batchLen: hooks.batchLen.Load(), batchRec: hooks.batchRec.Load(),
	}, nil
}

// kgoConsume reads want records of topic from offset 0 of every partition.
func kgoConsume(ctx context.Context, addr, topic string, parts int32, want int64) (result, error) {
	offs := map[int32]kgo.Offset{}
	for p := int32(0); p < parts; p++ {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
	) // fetch sizes: kgo's defaults (50 MiB per fetch, 1 MiB per partition)
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	if err := cl.Ping(ctx); err != nil {
		return result{}, err
	}
	var got, bytes int64
	start := time.Now()
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return result{}, fmt.Errorf("consume: %d of %d records after timeout: %w", got, want, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("fetch %s-%d: %w", t, p, err) })
		if ferr != nil {
			return result{}, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
		})
	}
	return result{records: got, bytes: bytes, elapsed: time.Since(start)}, nil
}
