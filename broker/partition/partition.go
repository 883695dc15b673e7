// Package partition is one replica of one topic partition on this broker: its
// log, its role and leader epoch, the one write path (appends with acks,
// follower appends that keep the leader's offsets, deletion below an offset,
// truncation), reads up to the high watermark, and the long-poll waiters that
// appends wake. It is the only holder of the partition's append lock: nothing
// else in the broker writes to a partition's log.
//
// It knows nothing of requests, coord or groups: the broker's request
// handlers and the group coordinator call it; the registry opens, configures
// and closes it.
//
// Files:
//
//	partition.go    the type, opening, configuration, accessors, close/delete
//	produce.go      validating a produced batch and appending it as leader
//	txn.go          transactional rules, markers, KIP-890 guards, LSO reads
//	idempotence.go  Kafka's idempotent-producer sequence rules (pure)
//	read.go         reads: local slices, remote reads, timestamp lookups
//	waiters.go      long-poll fetch waiters
//	maintain.go     time-driven log work, deletion below an offset, cleaning
//
// Lock order: Partition.mu (the append lock) → Partition.waitMu → localstore's
// locks. Callers never hold a Partition lock.
package partition

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// Config is what a partition needs of its topic's configuration, resolved by
// the broker from topic overrides, broker defaults and built-in defaults.
type Config struct {
	MaxMessageBytes    int32
	LogAppendTime      bool
	TimestampBeforeMax int64 // message.timestamp.before.max.ms
	TimestampAfterMax  int64 // message.timestamp.after.max.ms (KIP-937)
	MinInsyncReplicas  int32
	// Compacted: cleanup.policy includes compact, so every record needs a
	// key (Kafka's LogValidator refuses keyless ones with INVALID_RECORD).
	Compacted bool
	Store     localstore.Config
}

// Options open a Partition.
type Options struct {
	Dir         string // the partition folder (localstore.PartitionDir)
	Topic       string
	Index       int32
	Config      *Config
	LeaderEpoch int32
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Partition is this broker's replica of one topic partition.
type Partition struct {
	Topic string
	Index int32

	log    *localstore.Log
	clock  clock.Clock
	logger *slog.Logger
	cfg    atomic.Pointer[Config]

	leaderEpoch atomic.Int32
	// isrSize is the committed ISR's size, for min.insync.replicas.
	isrSize atomic.Int32

	// tier is the partition's remote side when its topic has
	// remote.storage.enable=true (and the broker has --remote); nil otherwise.
	tier atomic.Pointer[tiering.Partition]

	// lastRetentionMs is when a retention pass last looked at the partition.
	lastRetentionMs atomic.Int64

	// mu is the append lock: it serialises every write to the log (produce,
	// internal appends, deletion, truncation, rolls, restore), so sequence
	// checks and offset assignment are one step.
	mu sync.Mutex

	waitMu  sync.Mutex
	waiters map[*Waiter]struct{}

	// verifying holds each producer's KIP-890 verification guard (txn.go);
	// guarded by mu.
	verifying map[int64]*Verification

	// replicated: more than one replica, so the high watermark is hw and
	// rep holds the leader or follower state (replication.go).
	replicated atomic.Bool
	hw         atomic.Int64
	rep        repState
}

// ErrClosed is returned for writes to a closed or deleted partition.
var ErrClosed = errors.New("partition: closed")

// Open opens (or creates) the partition's log.
func Open(o Options) (*Partition, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	l, err := localstore.Open(o.Dir, o.Config.Store)
	if err != nil {
		return nil, fmt.Errorf("partition: open %s-%d: %w", o.Topic, o.Index, err)
	}
	p := &Partition{Topic: o.Topic, Index: o.Index, log: l, clock: o.Clock, logger: o.Logger, waiters: map[*Waiter]struct{}{}}
	p.cfg.Store(o.Config)
	p.leaderEpoch.Store(o.LeaderEpoch)
	p.isrSize.Store(1)
	p.hw.Store(l.HighWatermarkCheckpoint())
	p.rep.checkpointed = p.hw.Load()
	p.rep.leading.Store(true)
	return p, nil
}

// Config is the partition's current configuration.
func (p *Partition) Config() *Config { return p.cfg.Load() }

// SetConfig applies a topic config change; it affects the next append,
// roll and flush decisions.
func (p *Partition) SetConfig(cfg *Config) {
	p.cfg.Store(cfg)
	p.log.SetConfig(cfg.Store)
}

// SetLeader records this replica's leadership: the leader epoch appends are
// stamped with and the committed ISR's size.
func (p *Partition) SetLeader(epoch int32, isrSize int) {
	p.leaderEpoch.Store(epoch)
	p.isrSize.Store(int32(isrSize))
	if tp := p.tier.Load(); tp != nil {
		tp.SetLeaderEpoch(epoch)
	}
}

// LeaderEpoch is the epoch of the leader this replica follows or is.
func (p *Partition) LeaderEpoch() int32 { return p.leaderEpoch.Load() }

// HighWatermark is the offset below which records are committed and
// readable by consumers. With one replica every appended record is
// committed; with more it is the ISR-driven value of replication.go.
func (p *Partition) HighWatermark() int64 {
	if !p.replicated.Load() {
		return p.log.LogEndOffset()
	}
	return p.hw.Load()
}

// LogEndOffset is the next offset this replica will assign or copy.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// LocalLogStartOffset is the first offset held on local disk.
func (p *Partition) LocalLogStartOffset() int64 { return p.log.LogStartOffset() }

// LogStartOffset is the first offset a consumer can read: the remote log
// start when older data lives in the bucket, else the local one (Kafka's
// logStartOffset vs localLogStartOffset, KIP-405).
func (p *Partition) LogStartOffset() int64 {
	local := p.log.LogStartOffset()
	if tp := p.tier.Load(); tp != nil {
		if rs := tp.Manifest().StartOffset(); rs >= 0 && rs < local {
			return rs
		}
	}
	return local
}

// Size is the bytes of the local log.
func (p *Partition) Size() int64 { return p.log.Size() }

// Segments describes the local segments, oldest first.
func (p *Partition) Segments() []localstore.SegmentInfo { return p.log.Segments() }

// EndOffsetForEpoch answers OffsetForLeaderEpoch from this replica's epoch
// cache (KIP-101/KIP-279).
func (p *Partition) EndOffsetForEpoch(epoch int32) (int32, int64) {
	return p.log.EndOffsetForEpoch(epoch)
}

// Tier is the remote side of a tiered partition, nil otherwise.
func (p *Partition) Tier() *tiering.Partition { return p.tier.Load() }

// SetTier attaches (or with nil detaches) the remote side.
func (p *Partition) SetTier(tp *tiering.Partition) {
	if tp != nil {
		tp.SetLeaderEpoch(p.leaderEpoch.Load())
	}
	p.tier.Store(tp)
}

// Store is the partition's log for tiering's copier, which reads sealed
// segments and nothing else. Every write goes through Partition.
func (p *Partition) Store() *localstore.Log { return p.log }

// LastRetention is when a retention pass last looked at the partition (ms).
func (p *Partition) LastRetention() int64 { return p.lastRetentionMs.Load() }

// MarkRetention records a retention pass.
func (p *Partition) MarkRetention() { p.lastRetentionMs.Store(p.clock.Now().UnixMilli()) }

// Close checkpoints the high watermark, then flushes and closes the log
// cleanly. Pending acks=all produces fail with NOT_LEADER_OR_FOLLOWER.
func (p *Partition) Close() error {
	p.CheckpointHighWatermark()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.mu.Lock()
	p.failAcksLocked(kerr.NotLeaderForPartition)
	p.rep.leading.Store(false)
	p.rep.leader = nil
	p.rep.mu.Unlock()
	err := p.log.Close()
	p.wake()
	return err
}

// Delete closes the log and removes its folder (topic deletion, or a replica
// moved away).
func (p *Partition) Delete() error {
	p.mu.Lock()
	p.rep.mu.Lock()
	p.failAcksLocked(kerr.NotLeaderForPartition)
	p.rep.leading.Store(false)
	p.rep.leader = nil
	p.rep.mu.Unlock()
	err := p.log.Delete()
	p.mu.Unlock()
	p.wake()
	return err
}

// StartAt empties the log and restarts it at offset: a partition restored
// from the bucket goes on after the bucket's last offset.
func (p *Partition) StartAt(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.StartAt(offset)
}
