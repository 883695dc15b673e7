package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/retention"
	"github.com/strata-broker/strata/tiering"
)

// openTiering checks the object store and builds the tiering manager. A store
// that cannot be used (bad credentials, missing bucket, unreachable endpoint)
// is a clear error at start, not a silent stall later.
func (b *Broker) openTiering() error {
	if b.opts.Remote == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := b.opts.Remote.Check(ctx); err != nil {
		return fmt.Errorf("remote storage is not usable: %w", err)
	}
	// Count every request: object-store requests are what the bill charges.
	counters := &remotestore.Counters{}
	b.metrics.reg.MustRegister(counters)
	m, err := tiering.NewManager(tiering.Options{
		Store:      remotestore.WithCounters(b.opts.Remote, counters),
		ChunkBytes: b.settings.remoteChunkBytes,
		CacheBytes: b.settings.remoteCacheBytes,
		Now:        b.opts.Clock.Now,
		Logger:     b.log,
		Registerer: b.metrics.reg,
	})
	if err != nil {
		return err
	}
	b.tier = m
	b.remoteReads = make(chan struct{}, b.settings.remoteReaderThreads)
	return nil
}

// attachTiering gives each partition of a tiered topic its remote side and
// stores the topic's configuration beside its data in the bucket, so the
// topic can be restored from the bucket alone.
func (b *Broker) attachTiering(t *topic) {
	if b.tier == nil {
		return
	}
	if !t.cfg.remoteStorage {
		b.detachTiering(t)
		return
	}
	for _, p := range t.partitions {
		if p.tier.Load() != nil {
			continue
		}
		tp := b.tier.Partition(p.topic, p.index, p.log)
		tp.SetLeaderEpoch(p.leaderEpoch.Load())
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		if err := tp.Load(ctx); err != nil {
			// The copier loads it again on its next pass.
			b.log.Warn("tiering: cannot load the remote manifest yet", "topic", p.topic, "partition", p.index, "err", err)
		}
		cancel()
		p.tier.Store(tp)
	}
	if err := b.storeTopicConfig(t); err != nil {
		b.log.Warn("tiering: cannot store the topic config in the bucket", "topic", t.meta.Name, "err", err)
	}
}

// detachTiering handles tiered storage being turned off for a topic (KIP-950,
// allowed only with remote.log.delete.on.disable=true): the remote data is
// deleted and the partitions serve local data only.
func (b *Broker) detachTiering(t *topic) {
	for _, p := range t.partitions {
		tp := p.tier.Load()
		if tp == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
		if err := tp.DeleteAll(ctx); err != nil {
			b.log.Error("tiering: deleting remote data after disabling failed; the sweeper will not find it, delete it by hand", "topic", p.topic, "partition", p.index, "err", err)
		}
		cancel()
		p.tier.Store(nil)
		b.log.Info("tiering disabled; remote data deleted", "topic", p.topic, "partition", p.index)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	b.tier.Store().Delete(ctx, topicConfigKey(t.meta.Name))
}

// remoteTopicConfig is <topic>/topic.json in the bucket.
type remoteTopicConfig struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int               `json:"partitions"`
	Configs    map[string]string `json:"configs"`
}

func topicConfigKey(topic string) string { return topic + "/topic.json" }

func (b *Broker) storeTopicConfig(t *topic) error {
	doc := remoteTopicConfig{Name: t.meta.Name, ID: fmt.Sprintf("%x", t.meta.ID), Partitions: len(t.meta.Partitions), Configs: t.meta.Configs}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	return b.tier.Store().Put(ctx, topicConfigKey(t.meta.Name), bytes.NewReader(raw), int64(len(raw)))
}

// The sweeper removes unreferenced objects at most hourly, and only objects
// older than sweepGrace, which no live copy can still be writing.
const (
	sweepEvery = time.Hour
	sweepGrace = 10 * time.Minute
)

// TieringPass runs one copy + local-retention pass over every tiered
// partition. The loop calls it on a timer; tests call it directly.
func (b *Broker) TieringPass(ctx context.Context) {
	for _, t := range b.topics.all() {
		for _, p := range t.partitions {
			tp := p.tier.Load()
			if tp == nil {
				continue
			}
			cfg := p.cfg.Load()
			// A quiet partition still tiers: its active segment is sealed
			// once segment.ms has passed, then copied.
			p.appendMu.Lock()
			_, err := p.log.MaybeRoll()
			p.appendMu.Unlock()
			if err != nil {
				b.log.Error("roll failed", "topic", p.topic, "partition", p.index, "err", err)
			}
			if cfg.remoteStorage && !cfg.remoteCopyDisabled {
				if _, err := tp.CopyOnce(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("tiering: copy failed; will retry", "topic", p.topic, "partition", p.index, "err", err)
				}
			}
			if !cfg.remoteCopyDisabled {
				// With copying disabled (KIP-950) local data expires by
				// retention.* only (RetentionPass), as in Kafka 3.9.
				b.applyLocalRetention(p, tp, cfg)
			}
			if _, err := tp.MaybeSweep(ctx, sweepEvery, sweepGrace); err != nil && ctx.Err() == nil {
				b.log.Warn("tiering: sweep failed", "topic", p.topic, "partition", p.index, "err", err)
			}
		}
	}
}

// applyLocalRetention deletes local segments that are safely in the bucket
// and past local.retention.ms / local.retention.bytes. The manifest entry is
// durable before this runs (CopyOnce committed it), so the local copy is
// never the last one.
func (b *Broker) applyLocalRetention(p *partition, tp *tiering.Partition, cfg *topicConfig) {
	remoteEnd := tp.Manifest().EndOffset()
	if remoteEnd < 0 {
		return
	}
	lim := retention.EffectiveLocal(cfg.localRetentionMs, cfg.localRetentionByte, cfg.retentionMs, cfg.retentionBytes)
	segs := p.log.Segments()
	rs := make([]retention.Segment, len(segs))
	for i, s := range segs {
		rs[i] = retention.Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size,
			MaxTimestamp: s.MaxTimestamp, AppendedAt: s.LastModified, Sealed: s.Sealed}
	}
	cut := retention.LocalCutoff(rs, lim, remoteEnd, b.now())
	if len(segs) == 0 || cut <= p.log.LogStartOffset() {
		return
	}
	p.appendMu.Lock()
	_, err := p.log.DeleteRecordsBefore(cut)
	p.appendMu.Unlock()
	if err != nil {
		b.log.Error("tiering: local retention failed", "topic", p.topic, "partition", p.index, "err", err)
		return
	}
	b.log.Info("tiering: local segments deleted after copy", "topic", p.topic, "partition", p.index, "local_start_offset", cut)
}

// readRemote serves a fetch below the local log start from the bucket, on the
// bounded pool of remote readers, within the fetch's deadline.
func (b *Broker) readRemote(deadline time.Time, tp *tiering.Partition, offset int64, maxBytes int) ([]byte, error) {
	ctx, cancel := context.WithDeadline(b.ctx, deadline)
	defer cancel()
	select {
	case b.remoteReads <- struct{}{}:
		defer func() { <-b.remoteReads }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return tp.Read(ctx, offset, maxBytes)
}

// remoteStatusConfig is a read-only broker config reporting whether copies to
// remote storage work: "disabled", "ok", or the failing partitions' last
// errors. `strata tier status` prints it.
const remoteStatusConfig = "strata.remote.status"

func (b *Broker) remoteStatus() string {
	if b.tier == nil {
		return "disabled"
	}
	var errs []string
	for _, t := range b.topics.all() {
		for _, p := range t.partitions {
			if tp := p.tier.Load(); tp != nil && tp.LastError() != nil {
				errs = append(errs, fmt.Sprintf("%s-%d: %v", p.topic, p.index, tp.LastError()))
			}
		}
	}
	if len(errs) == 0 {
		return "ok"
	}
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
	}
	return strings.Join(errs, "; ")
}

// tierStats returns a tiered partition's bytes in the bucket and its copy lag:
// local bytes at or above the remote end, not yet copied.
func tierStats(p *partition, tp *tiering.Partition) (remoteBytes, lagBytes int64) {
	m := tp.Manifest()
	for _, s := range m.Readable() {
		remoteBytes += s.Size
	}
	end := m.EndOffset()
	for _, s := range p.log.Segments() {
		if s.NextOffset > end {
			lagBytes += s.Size
		}
	}
	return remoteBytes, lagBytes
}

// isRemoteOffset reports whether offset is below the local log but within the
// remote one.
func isRemoteOffset(p *partition, tp *tiering.Partition, offset int64) bool {
	return tp != nil && offset < p.log.LogStartOffset() && offset >= p.logStartOffset()
}

var _ = errors.Is
var _ = localstore.ErrOffsetOutOfRange
