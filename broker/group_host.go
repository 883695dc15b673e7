package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/localstore"
)

// groupHost is the broker side of the group coordinator (broker/group): the
// __consumer_offsets topic and partitions from the registry, and each
// partition's log as a group.Log. It is the only place the coordinator
// meets broker types. Leadership of __consumer_offsets partitions reaches
// the coordinator from the registry (applyRole → Elected / Resigned), so in
// a cluster the coordinator of a group is the leader of its partition.
type groupHost struct {
	b *Broker
}

var _ group.Host = (*groupHost)(nil)

// offsetsCommitTimeout is Kafka's offsets.commit.timeout.ms default: how
// long a group write waits for the in-sync replicas.
const offsetsCommitTimeout = 5 * time.Second

func newGroupCoordinator(b *Broker) (*group.Coordinator, error) {
	s := b.settings
	return group.New(group.Options{
		Host:                   &groupHost{b: b},
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
}

// offsetsLeadership tells the group coordinator about a change of role of a
// __consumer_offsets replica.
func (b *Broker) offsetsLeadership(topicName string, p *partition.Partition, leading bool) {
	if topicName != group.OffsetsTopic || b.groups == nil {
		return
	}
	if leading {
		b.groups.Elected(p.Index, p.LeaderEpoch())
	} else {
		b.groups.Resigned(p.Index, p.LeaderEpoch())
	}
}

func (h *groupHost) OffsetsPartitions(ctx context.Context) (int32, error) {
	b := h.b
	if t := b.topics.get(group.OffsetsTopic); t != nil {
		return t.count(), nil
	}
	rf := min(b.settings.offsetsTopicReplication, int16(max(len(b.topics.liveBrokers()), 1)))
	if _, err := b.createTopic(ctx, group.OffsetsTopic, b.settings.offsetsTopicParts, rf, group.OffsetsTopicConfigs()); err != nil && !errors.Is(err, errTopicExists) {
		return 0, fmt.Errorf("create %s: %w", group.OffsetsTopic, err)
	}
	t := b.topics.get(group.OffsetsTopic)
	if t == nil {
		// Created by the controller; this broker has not seen it yet.
		return 0, fmt.Errorf("%s is being created", group.OffsetsTopic)
	}
	return t.count(), nil
}

func (h *groupHost) OffsetsLog(idx int32) group.Log {
	_, p := h.b.topics.partition(group.OffsetsTopic, idx)
	if p == nil || !p.IsLeader() {
		return nil
	}
	return offsetsLog{p}
}

func (h *groupHost) TopicPartitions(topic string) int32 {
	t := h.b.topics.get(topic)
	if t == nil {
		return 0
	}
	return t.count()
}

// HighWatermark is the in-memory high watermark of a replica hosted here:
// the leader's, or a follower's (the leader's as of its last fetch, so lag
// computed from it is at most one fetch round behind). A partition with no
// replica here has no lag series on this broker.
func (h *groupHost) HighWatermark(topic string, idx int32) (int64, bool) {
	_, p := h.b.topics.partition(topic, idx)
	if p == nil {
		return 0, false
	}
	return p.HighWatermark(), true
}

// offsetsLog is one __consumer_offsets partition as a group.Log.
type offsetsLog struct{ p *partition.Partition }

var _ group.Log = offsetsLog{}

// Append writes through the partition's one write path, waiting as acks=all
// does (offsets.commit.timeout.ms at most).
func (l offsetsLog) Append(ctx context.Context, batch []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, offsetsCommitTimeout)
	defer cancel()
	info, err := l.p.AppendInternal(ctx, batch)
	return info.BaseOffset, offsetsAppendErr(err)
}

// AppendTxn writes TxnOffsetCommit's transactional batch through the
// partition's transactional checks (a fenced epoch, the KIP-890 guard the
// TxnOffsetCommit handler took: a *partition.Verification or nil).
func (l offsetsLog) AppendTxn(ctx context.Context, batch []byte, verification any) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, offsetsCommitTimeout)
	defer cancel()
	v, _ := verification.(*partition.Verification)
	info, err := l.p.AppendTransactional(ctx, batch, v)
	return info.BaseOffset, offsetsAppendErr(err)
}

func offsetsAppendErr(err error) error {
	if errors.Is(err, partition.ErrNotLeader) || errors.Is(err, partition.ErrClosed) {
		return fmt.Errorf("%w: %v", group.ErrNotLeader, err)
	}
	return err
}

func (l offsetsLog) StartOffset() int64 { return l.p.LocalLogStartOffset() }

func (l offsetsLog) EndOffset() int64 { return l.p.LogEndOffset() }

// groupReadBytes is how much of the log one Read walks (Kafka's
// offsets.load.buffer.size is 5 MiB).
const groupReadBytes = 4 << 20

func (l offsetsLog) Read(ctx context.Context, from, upTo int64, fn func(group.Record)) (int64, error) {
	if err := ctx.Err(); err != nil {
		return from, err
	}
	b, err := l.p.ReadUpTo(from, groupReadBytes, upTo)
	if err != nil {
		return from, err
	}
	next, err := walkInternalBatches(b, fn)
	if next < 0 {
		next = from
	}
	return next, err
}

var errBadGroupBatch = errors.New("bad internal topic batch")

// walkInternalBatches calls fn for every record of every data batch in b
// (bytes read from __consumer_offsets or __transaction_state), with the
// batch's producer id and transactional flag, and once for every
// transaction marker (Control set, no key or value), and returns the offset
// after the last whole batch (-1 if there was none). Control batches the
// cleaner emptied are skipped; a trailing partial batch ends the walk. A
// batch whose records do not decode is skipped and reported as the error,
// after the walk has gone on past it.
func walkInternalBatches(b []byte, fn func(group.Record)) (next int64, err error) {
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
		if h.NumRecords <= 0 {
			continue
		}
		if h.IsControl() {
			commit, _, cerr := localstore.ParseControlBatch(batch)
			if cerr != nil {
				if err == nil {
					err = fmt.Errorf("%w: %v", errBadGroupBatch, cerr)
				}
				continue
			}
			fn(group.Record{Offset: h.BaseOffset, ProducerID: h.ProducerID, Control: true, Commit: commit})
			continue
		}
		if berr := walkBatchRecords(h, batch, fn); berr != nil && err == nil {
			err = berr
		}
	}
	return next, err
}

// walkBatchRecords decodes one batch with localstore's record walker
// (compacted batches keep gaps in their offset deltas).
func walkBatchRecords(h localstore.BatchHeader, batch []byte, fn func(group.Record)) error {
	plain, err := localstore.DecompressRecords(nil, h.Compression(), localstore.RecordsSection(batch))
	if err != nil {
		return fmt.Errorf("%w: batch at %d: %v", errBadGroupBatch, h.BaseOffset, err)
	}
	err = localstore.WalkRecords(plain, h, localstore.IncreasingDeltas, func(r localstore.Record) bool {
		fn(group.Record{Key: r.Key, Value: r.Value, Offset: h.BaseOffset + int64(r.OffsetDelta),
			ProducerID: h.ProducerID, Transactional: h.IsTransactional()})
		return true
	})
	if err != nil {
		return fmt.Errorf("%w: %v", errBadGroupBatch, err)
	}
	return nil
}
