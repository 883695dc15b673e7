package broker

import (
	"context"
	"slices"
	"time"
)

// ControlledShutdown moves this broker's leaderships to other in-sync
// replicas before it stops (Kafka's controlled shutdown, on SIGTERM): it
// marks its registration as shutting down, the controller hands every
// partition it leads to another live ISR member and drops it from ISRs
// where others remain, and this waits until it leads no partition that
// another broker could lead, or ctx ends. Clients then meet a new leader
// at once instead of waiting out a session timeout, and a rolling restart
// loses nothing. Close still has to be called.
func (b *Broker) ControlledShutdown(ctx context.Context) error {
	if !b.leadsMovable() {
		return nil
	}
	b.log.Info("controlled shutdown: moving leaderships away")
	if err := b.coord.SetShuttingDown(ctx); err != nil {
		return err
	}
	start := time.Now()
	for {
		ch := b.topics.changes()
		if !b.leadsMovable() {
			break
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			b.log.Warn("controlled shutdown timed out; stopping with leaderships still here", "after", time.Since(start))
			return ctx.Err()
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
	b.log.Info("controlled shutdown: no leaderships left to move", "took", time.Since(start))
	return nil
}

// leadsMovable reports whether this broker leads a replicated partition
// whose ISR has another live broker that is not shutting down.
func (b *Broker) leadsMovable() bool {
	live := map[int32]bool{}
	for _, br := range b.topics.liveBrokers() {
		if !br.ShuttingDown && br.NodeID != b.opts.NodeID {
			live[br.NodeID] = true
		}
	}
	for _, t := range b.topics.all() {
		for _, p := range t.hosted() {
			if !p.Replicated() || !p.IsLeader() {
				continue
			}
			if slices.ContainsFunc(t.meta.Partitions[p.Index].ISR, func(id int32) bool { return live[id] }) {
				return true
			}
		}
	}
	return false
}
