package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/replica"
	"github.com/strata-broker/strata/coord"
)

// isrWriter is the leader's side of ISR changes (DESIGN.md: a partition's
// leader changes its ISR). Proposals come from broker/replica's state
// machine — on a follower fetch (expand) or a tick (shrink) — and are
// written to coord with check-and-set on the partition epoch, fenced by this
// broker's session and leader epoch (coord.AsLeader). A rejected write
// reloads the state from what coord holds; it is never retried blindly.
// A write whose outcome is unknown (Consul unreachable) stays in flight and
// is written again on a later tick: if the first landed, the retry is
// rejected and the state adopts it.
//
// One goroutine does all writes, so a partition never has two in flight.
type isrWriter struct {
	b    *Broker
	kick chan struct{}

	mu      sync.Mutex
	pending map[*partition.Partition]replica.Proposal
}

// isrTickInterval is how often led partitions are checked for lagging
// followers and failed writes retried (Kafka checks ISR shrinks every
// replica.lag.time.max.ms / 2; retrying sooner costs nothing).
const isrTickInterval = 500 * time.Millisecond

func newISRWriter(b *Broker) *isrWriter {
	return &isrWriter{b: b, kick: make(chan struct{}, 1), pending: map[*partition.Partition]replica.Proposal{}}
}

// submit queues p's proposal for writing. Never blocks.
func (w *isrWriter) submit(p *partition.Partition, prop replica.Proposal) {
	w.mu.Lock()
	w.pending[p] = prop
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *isrWriter) run() {
	t := time.NewTicker(isrTickInterval)
	defer t.Stop()
	for {
		select {
		case <-w.b.ctx.Done():
			return
		case <-t.C:
			w.Tick()
		case <-w.kick:
		}
		w.flush()
	}
}

// Tick runs every led replicated partition's lag check, queueing shrink
// proposals and re-queueing writes whose outcome was unknown.
func (w *isrWriter) Tick() {
	for _, p := range w.b.topics.allPartitions() {
		if !p.Replicated() || !p.IsLeader() {
			continue
		}
		res := p.Tick()
		if res.Proposal != nil {
			w.submit(p, *res.Proposal)
			continue
		}
		if prop, ok := p.ProposalInFlight(); ok {
			w.mu.Lock()
			if _, queued := w.pending[p]; !queued {
				w.pending[p] = prop
			}
			w.mu.Unlock()
		}
	}
}

// flush writes every queued proposal.
func (w *isrWriter) flush() {
	for {
		w.mu.Lock()
		var p *partition.Partition
		var prop replica.Proposal
		for p, prop = range w.pending {
			break
		}
		if p != nil {
			delete(w.pending, p)
		}
		w.mu.Unlock()
		if p == nil || w.b.ctx.Err() != nil {
			return
		}
		w.write(p, prop)
	}
}

func (w *isrWriter) write(p *partition.Partition, prop replica.Proposal) {
	b := w.b
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	stored, err := b.coord.UpdatePartition(ctx, p.Topic, prop.Meta, coord.AsLeader)
	cancel()
	kind := prop.Kind.String()
	switch {
	case err == nil:
		b.metrics.isrChanges.WithLabelValues(kind, "committed").Inc()
		b.log.Info("ISR changed", "topic", p.Topic, "partition", p.Index, "kind", kind, "isr", stored.ISR, "partition_epoch", stored.PartitionEpoch)
		p.ProposalCommitted(stored)
	case errors.Is(err, coord.ErrConflict) || errors.Is(err, coord.ErrFenced):
		b.metrics.isrChanges.WithLabelValues(kind, "rejected").Inc()
		b.log.Info("ISR change rejected; reloading", "topic", p.Topic, "partition", p.Index, "kind", kind, "proposed", prop.Meta.ISR, "stored", stored.ISR, "err", err)
		if stored.Replicas != nil {
			p.ProposalRejected(stored)
		}
	default:
		// Outcome unknown: it stays in flight and the next Tick retries.
		b.metrics.isrChanges.WithLabelValues(kind, "failed").Inc()
		b.log.Warn("ISR change not written; will retry", "topic", p.Topic, "partition", p.Index, "kind", kind, "err", err)
	}
}
