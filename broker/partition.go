package broker

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// partition is this broker's replica of one topic partition. It owns the
// partition's log; appendMu serialises writers (produce, DeleteRecords,
// truncation) so sequence checks and offset assignment are one step.
//
// Lock order: topicRegistry.mu → partition.appendMu → partition.waitMu.
type partition struct {
	topic string
	index int32
	log   *localstore.Log
	cfg   atomic.Pointer[topicConfig]

	leaderEpoch atomic.Int32

	// tier is the partition's remote side when its topic has
	// remote.storage.enable=true (and the broker has --remote); nil otherwise.
	tier atomic.Pointer[tiering.Partition]

	// lastRetentionMs is when a retention pass last looked at the partition.
	lastRetentionMs atomic.Int64

	appendMu sync.Mutex

	// waiters are long-poll fetches parked on this partition; an append wakes
	// all of them (a non-blocking send on each one's channel).
	waitMu  sync.Mutex
	waiters map[*fetchWaiter]struct{}
}

// fetchWaiter is one parked fetch; ch has capacity 1 so wake never blocks.
type fetchWaiter struct{ ch chan struct{} }

func partitionDir(dataDir, topic string, p int32) string {
	return filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p))
}

func openPartition(dataDir, topic string, index int32, cfg *topicConfig, epoch int32) (*partition, error) {
	l, err := localstore.Open(partitionDir(dataDir, topic, index), cfg.store)
	if err != nil {
		return nil, fmt.Errorf("open %s-%d: %w", topic, index, err)
	}
	p := &partition{topic: topic, index: index, log: l, waiters: map[*fetchWaiter]struct{}{}}
	p.cfg.Store(cfg)
	p.leaderEpoch.Store(epoch)
	return p, nil
}

// highWatermark: on a single node every appended record is committed. The
// replication issue replaces this with the ISR-driven high watermark.
func (p *partition) highWatermark() int64 { return p.log.LogEndOffset() }

// logStartOffset is the first offset a consumer can read: the remote log
// start when older data lives in the bucket, else the local one (Kafka's
// logStartOffset vs localLogStartOffset, KIP-405).
func (p *partition) logStartOffset() int64 {
	local := p.log.LogStartOffset()
	if tp := p.tier.Load(); tp != nil {
		if rs := tp.Manifest().StartOffset(); rs >= 0 && rs < local {
			return rs
		}
	}
	return local
}

func (p *partition) addWaiter(w *fetchWaiter) {
	p.waitMu.Lock()
	p.waiters[w] = struct{}{}
	p.waitMu.Unlock()
}

func (p *partition) removeWaiter(w *fetchWaiter) {
	p.waitMu.Lock()
	delete(p.waiters, w)
	p.waitMu.Unlock()
}

// wake tells every parked fetch that new data (or a new state) is here.
func (p *partition) wake() {
	p.waitMu.Lock()
	for w := range p.waiters {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

func (p *partition) setConfig(cfg *topicConfig) {
	p.cfg.Store(cfg)
	p.log.SetConfig(cfg.store)
}
