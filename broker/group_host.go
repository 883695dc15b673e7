package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/localstore"
)

// groupHost is the broker side of the group coordinator (broker/group): the
// __consumer_offsets topic and partitions from the registry, and each
// partition's log as a group.Log. It is the only place the coordinator
// meets broker types.
type groupHost struct {
	b *Broker
	c *group.Coordinator
	// partitions is __consumer_offsets' partition count once the topic
	// exists and its partitions were elected; 0 before.
	partitions atomic.Int32
	createMu   sync.Mutex // serialises creating the topic and electing it
}

var _ group.Host = (*groupHost)(nil)

// newGroupCoordinator starts the coordinator and, on this single node,
// elects it for every existing __consumer_offsets partition, which loads
// them in the background (today's start-up behaviour).
func newGroupCoordinator(b *Broker) (*group.Coordinator, error) {
	s := b.settings
	h := &groupHost{b: b}
	gc, err := group.New(group.Options{
		Host:                   h,
		Clock:                  b.opts.Clock,
		Logger:                 b.log,
		MinSessionTimeout:      time.Duration(s.groupMinSessionMs) * time.Millisecond,
		MaxSessionTimeout:      time.Duration(s.groupMaxSessionMs) * time.Millisecond,
		InitialRebalanceDelay:  time.Duration(s.groupInitialDelayMs) * time.Millisecond,
		OffsetsRetention:       time.Duration(s.offsetsRetentionMin) * time.Minute,
		RetentionCheckInterval: time.Duration(s.offsetsRetentionCheckMs) * time.Millisecond,
		LagMetrics:             group.LagMetrics(s.groupLagMetrics),
		Registerer:             b.metrics.reg,
	})
	if err != nil {
		return nil, err
	}
	h.c = gc
	if t := b.topics.get(group.OffsetsTopic); t != nil {
		h.electAll(t)
	}
	return gc, nil
}

// electAll makes this broker the coordinator of every partition of t: a
// single node leads them all. The cluster replaces this with Elected and
// Resigned calls driven by leadership changes.
func (h *groupHost) electAll(t *topic) {
	for _, p := range t.partitions {
		h.c.Elected(p.index, p.leaderEpoch.Load())
	}
	h.partitions.Store(int32(len(t.partitions)))
}

func (h *groupHost) OffsetsPartitions(ctx context.Context) (int32, error) {
	if n := h.partitions.Load(); n > 0 {
		return n, nil
	}
	h.createMu.Lock()
	defer h.createMu.Unlock()
	if n := h.partitions.Load(); n > 0 {
		return n, nil
	}
	t := h.b.topics.get(group.OffsetsTopic)
	if t == nil {
		var err error
		t, err = h.b.topics.create(ctx, group.OffsetsTopic, h.b.settings.offsetsTopicParts, 1, group.OffsetsTopicConfigs())
		if errors.Is(err, errTopicExists) {
			t = h.b.topics.get(group.OffsetsTopic)
		} else if err != nil {
			return 0, fmt.Errorf("create %s: %w", group.OffsetsTopic, err)
		}
		if t == nil {
			return 0, fmt.Errorf("%s vanished after creation", group.OffsetsTopic)
		}
	}
	h.electAll(t)
	return int32(len(t.partitions)), nil
}

func (h *groupHost) OffsetsLog(p int32) group.Log {
	_, part := h.b.topics.partition(group.OffsetsTopic, p)
	if part == nil {
		return nil
	}
	return offsetsLog{part}
}

func (h *groupHost) TopicPartitions(topic string) int32 {
	t := h.b.topics.get(topic)
	if t == nil {
		return 0
	}
	return int32(len(t.partitions))
}

func (h *groupHost) HighWatermark(topic string, partition int32) (int64, bool) {
	_, p := h.b.topics.partition(topic, partition)
	if p == nil {
		return 0, false
	}
	return p.highWatermark(), true
}

// offsetsLog is one __consumer_offsets partition as a group.Log.
type offsetsLog struct{ p *partition }

var _ group.Log = offsetsLog{}

// Append writes through the partition's log as producePartition does for
// clients (who cannot produce to the internal topic). On a single node an
// appended batch is committed; the partition package's append with acks
// replaces this body (and maps "not leader" to group.ErrNotLeader).
func (l offsetsLog) Append(ctx context.Context, batch []byte) error {
	p := l.p
	p.appendMu.Lock()
	_, err := p.log.Append(batch, p.leaderEpoch.Load(), false)
	p.appendMu.Unlock()
	if err != nil {
		if errors.Is(err, localstore.ErrClosed) {
			return fmt.Errorf("%w: %v", group.ErrNotLeader, err)
		}
		return err
	}
	p.wake()
	return nil
}

func (l offsetsLog) StartOffset() int64 { return l.p.log.LogStartOffset() }

func (l offsetsLog) EndOffset() int64 { return l.p.log.LogEndOffset() }

// groupReadBytes is how much of the log one Read walks (Kafka's
// offsets.load.buffer.size is 5 MiB).
const groupReadBytes = 4 << 20

func (l offsetsLog) Read(ctx context.Context, from, upTo int64, fn func(group.Record)) (int64, error) {
	if err := ctx.Err(); err != nil {
		return from, err
	}
	b, err := l.p.log.ReadBytes(from, groupReadBytes, upTo)
	if err != nil {
		return from, err
	}
	next, err := walkGroupBatches(b, fn)
	if next < 0 {
		next = from
	}
	return next, err
}

var errBadGroupBatch = errors.New("bad " + group.OffsetsTopic + " batch")

// walkGroupBatches calls fn for every record of every data batch in b (bytes
// read from a __consumer_offsets log) and returns the offset after the last
// whole batch (-1 if there was none). Control batches are skipped; a trailing
// partial batch ends the walk. A batch whose records do not decode is skipped
// and reported as the error, after the walk has gone on past it.
func walkGroupBatches(b []byte, fn func(group.Record)) (next int64, err error) {
	next = -1
	for len(b) >= localstore.BatchHeaderSize {
		h, herr := localstore.ParseBatchHeader(b)
		if herr != nil {
			return next, fmt.Errorf("%w: %v", errBadGroupBatch, herr)
		}
		size := h.Size()
		if size < localstore.BatchHeaderSize || size > len(b) {
			return next, nil
		}
		batch := b[:size]
		b = b[size:]
		next = h.LastOffset() + 1
		if h.IsControl() || h.NumRecords <= 0 {
			continue
		}
		if berr := walkBatchRecords(h, batch, fn); berr != nil && err == nil {
			err = berr
		}
	}
	return next, err
}

func walkBatchRecords(h localstore.BatchHeader, batch []byte, fn func(group.Record)) error {
	body, err := decompress(h.Compression(), batch[batchRecordsPos:])
	if err != nil {
		return fmt.Errorf("%w: batch at %d: %v", errBadGroupBatch, h.BaseOffset, err)
	}
	for i := int32(0); i < h.NumRecords; i++ {
		n, ln := kbin.Varint(body)
		if ln <= 0 || n < 0 || int(n) > len(body)-ln {
			return fmt.Errorf("%w: record %d of batch at %d: bad length", errBadGroupBatch, i, h.BaseOffset)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(body[:ln+int(n)]); err != nil {
			return fmt.Errorf("%w: record %d of batch at %d: %v", errBadGroupBatch, i, h.BaseOffset, err)
		}
		body = body[ln+int(n):]
		fn(group.Record{Key: rec.Key, Value: rec.Value})
	}
	return nil
}
