package broker

import (
	"context"
	"time"

	"github.com/strata-broker/strata/retention"
	"github.com/strata-broker/strata/tiering"
)

// every runs pass every interval until the broker closes. The tiering pass
// (remote.log.manager.task.interval.ms) and the retention pass
// (log.retention.check.interval.ms) run on it; tests call the passes directly.
func (b *Broker) every(interval time.Duration, pass func(context.Context)) {
	defer b.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			pass(b.ctx)
		}
	}
}

// RetentionPass deletes, for every topic with cleanup.policy delete, the
// oldest segments of the whole log — remote and local — past retention.ms or
// retention.bytes. The decision is retention.Cutoff (pure); the order is
// crash-safe: the remote log start is advanced in the manifest first, then
// remote objects go, then the local log start checkpoint, then local files.
// The loop calls it on a timer; tests call it directly with an injected clock.
func (b *Broker) RetentionPass(ctx context.Context) {
	for _, t := range b.topics.all() {
		cfg := t.cfg
		if !cfg.deleteKind || (cfg.retentionMs < 0 && cfg.retentionBytes < 0) {
			continue
		}
		lim := retention.Limits{Ms: cfg.retentionMs, Bytes: cfg.retentionBytes}
		for _, p := range t.partitions {
			b.retainPartition(ctx, p, lim)
		}
	}
}

func (b *Broker) retainPartition(ctx context.Context, p *partition, lim retention.Limits) {
	p.lastRetentionMs.Store(b.now().UnixMilli())
	tp := p.tier.Load()
	var segs []retention.Segment
	remoteEnd := int64(-1)
	if tp != nil {
		m := tp.Manifest()
		for _, s := range m.Readable() {
			segs = append(segs, retention.Segment{BaseOffset: max(s.BaseOffset, m.LogStartOffset), NextOffset: s.LastOffset + 1,
				Size: s.Size, MaxTimestamp: s.MaxTimestamp, AppendedAt: time.UnixMilli(s.AppendedAtMs), Sealed: true})
		}
		remoteEnd = m.EndOffset()
	}
	for _, s := range p.log.Segments() {
		if s.BaseOffset < remoteEnd {
			continue // also in the bucket, counted there
		}
		segs = append(segs, retention.Segment{BaseOffset: s.BaseOffset, NextOffset: s.NextOffset, Size: s.Size,
			MaxTimestamp: s.MaxTimestamp, AppendedAt: s.LastModified, Sealed: s.Sealed})
	}
	cut := retention.Cutoff(segs, lim, b.now())
	if cut <= p.logStartOffset() {
		return
	}
	if err := b.deleteBefore(ctx, p, tp, cut); err != nil {
		b.log.Error("retention failed", "topic", p.topic, "partition", p.index, "err", err)
		return
	}
	b.metrics.retentionDeletes.Inc()
	b.log.Info("retention advanced the log start", "topic", p.topic, "partition", p.index, "log_start_offset", cut)
}

// deleteBefore moves a partition's log start to offset in both tiers, remote
// first, and deletes what lies wholly below it. DeleteRecords and retention
// share it.
func (b *Broker) deleteBefore(ctx context.Context, p *partition, tp *tiering.Partition, offset int64) error {
	if tp != nil {
		if _, err := tp.AdvanceLogStart(ctx, offset); err != nil {
			return err
		}
	}
	p.appendMu.Lock()
	defer p.appendMu.Unlock()
	if offset > p.log.LogStartOffset() {
		if _, err := p.log.DeleteRecordsBefore(min(offset, p.log.LogEndOffset())); err != nil {
			return err
		}
	}
	p.wake()
	return nil
}
