package broker

import (
	"context"
	"time"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/retention"
)

// every runs pass every interval until the broker closes. The tiering pass
// (remote.log.manager.task.interval.ms) and the retention pass
// (log.retention.check.interval.ms) run on it; tests call the passes directly.
func (b *Broker) every(interval time.Duration, pass func(context.Context)) {
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
// retention.bytes. The decision is retention.Cutoff (pure) and the order
// retention.Delete's crash-safe one: the remote log start is advanced in the
// manifest first, then remote objects go, then the local log start
// checkpoint, then local files. The loop calls it on a timer; tests call it
// directly with an injected clock.
func (b *Broker) RetentionPass(ctx context.Context) {
	for _, t := range b.topics.all() {
		cfg := t.cfg
		if !cfg.deleteKind || (cfg.retentionMs < 0 && cfg.retentionBytes < 0) {
			continue
		}
		lim := retention.Limits{Ms: cfg.retentionMs, Bytes: cfg.retentionBytes}
		for _, p := range t.hosted() {
			p.MarkRetention()
			cut, moved, err := retention.Apply(ctx, p, remoteOf(p), p.LogStartOffset(), lim, b.now())
			if err != nil {
				b.log.Error("retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
				continue
			}
			if moved {
				b.metrics.retentionDeletes.Inc()
				b.log.Info("retention advanced the log start", "topic", p.Topic, "partition", p.Index, "log_start_offset", cut)
			}
		}
	}
}

// remoteOf is a partition's remote side as retention's interface, nil (not
// a typed nil) when it has none.
func remoteOf(p *partition.Partition) retention.Remote {
	if tp := p.Tier(); tp != nil {
		return tp
	}
	return nil
}
