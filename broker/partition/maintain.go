package partition

import (
	"context"

	"github.com/strata-broker/strata/localstore"
)

// Maintain runs time-driven log work: flush.ms, and segment.ms rolls of a
// partition that receives no appends (Kafka's log flusher and roll checks).
func (p *Partition) Maintain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.log.FlushIfDue(); err != nil {
		p.logger.Error("flush failed", "topic", p.Topic, "partition", p.Index, "err", err)
	}
	if _, err := p.log.MaybeRoll(); err != nil {
		p.logger.Error("roll failed", "topic", p.Topic, "partition", p.Index, "err", err)
	}
}

// MaybeRoll seals a quiet active segment past segment.ms, so it can tier.
func (p *Partition) MaybeRoll() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.MaybeRoll()
}

// DeleteLocalBefore advances the local log start to offset (capped at the
// log end) and deletes local segments wholly below it: local retention of
// tiered data and the local half of retention.Delete's crash-safe order. The
// new start is checkpointed before any file goes.
func (p *Partition) DeleteLocalBefore(offset int64) error {
	p.mu.Lock()
	defer p.wake()
	defer p.mu.Unlock()
	if offset <= p.log.LogStartOffset() {
		return nil
	}
	_, err := p.log.DeleteRecordsBefore(min(offset, p.log.LogEndOffset()))
	return err
}

// Clean runs one log-cleaner pass (compaction) up to the high watermark. The
// cleaner serialises with appends inside localstore (it takes the write lock
// only to swap segments), so the append lock is not held across the pass.
func (p *Partition) Clean(ctx context.Context, cfg localstore.CleanerConfig) (localstore.CleanResult, error) {
	return p.log.Clean(ctx, cfg, p.HighWatermark())
}
