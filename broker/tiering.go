package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
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
		// At least one chunk, so a small setting still lets reads run.
		ReadAheadBytes: readAheadBytes(b.settings.remoteReadAheadBytes, b.settings.remoteChunkBytes),
		Now:            b.opts.Clock.Now,
		Logger:         b.log,
		Registerer:     b.metrics.reg,
	})
	if err != nil {
		return err
	}
	b.tier = m
	b.remoteReads = make(chan struct{}, b.settings.remoteReaderThreads)
	return nil
}

// readAheadBytes maps remote.log.read.ahead.bytes to tiering's option: 0
// and -1 both turn read-ahead off; anything else is at least one chunk.
func readAheadBytes(setting, chunk int64) int64 {
	if setting <= 0 {
		return -1
	}
	return max(setting, chunk)
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
	for _, p := range t.hosted() {
		if p.Tier() != nil {
			continue
		}
		tp := b.tier.Partition(p.Topic, p.Index, p.Store())
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		if err := tp.Load(ctx); err != nil {
			// The copier loads it again on its next pass.
			b.log.Warn("tiering: cannot load the remote manifest yet", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		cancel()
		p.SetTier(tp)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	tc := tiering.TopicConfig{Name: t.meta.Name, ID: fmt.Sprintf("%x", t.meta.ID), Partitions: len(t.meta.Partitions), Configs: t.meta.Configs}
	if err := b.tier.PutTopicConfig(ctx, tc); err != nil {
		b.log.Warn("tiering: cannot store the topic config in the bucket", "topic", t.meta.Name, "err", err)
	}
}

// detachTiering handles tiered storage being turned off for a topic (KIP-950,
// allowed only with remote.log.delete.on.disable=true): the remote data is
// deleted and the partitions serve local data only.
func (b *Broker) detachTiering(t *topic) {
	detached := false
	for _, p := range t.hosted() {
		tp := p.Tier()
		if tp == nil {
			continue
		}
		detached = true
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
		if err := tp.DeleteAll(ctx); err != nil {
			b.log.Error("tiering: deleting remote data after disabling failed; the sweeper will not find it, delete it by hand", "topic", p.Topic, "partition", p.Index, "err", err)
		}
		cancel()
		p.SetTier(nil)
		b.log.Info("tiering disabled; remote data deleted", "topic", p.Topic, "partition", p.Index)
	}
	if !detached {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := b.tier.DeleteTopicConfig(ctx, t.meta.Name); err != nil {
		b.log.Warn("tiering: cannot delete the topic config in the bucket", "topic", t.meta.Name, "err", err)
	}
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
		cfg := t.cfg
		for _, p := range t.hosted() {
			tp := p.Tier()
			if tp == nil {
				continue
			}
			// A quiet partition still tiers: its active segment is sealed
			// once segment.ms has passed, then copied.
			if _, err := p.MaybeRoll(); err != nil {
				b.log.Error("roll failed", "topic", p.Topic, "partition", p.Index, "err", err)
			}
			if cfg.remoteStorage && !cfg.remoteCopyDisabled {
				if _, err := tp.CopyOnce(ctx); err != nil && ctx.Err() == nil {
					b.log.Warn("tiering: copy failed; will retry", "topic", p.Topic, "partition", p.Index, "err", err)
				}
			}
			if !cfg.remoteCopyDisabled {
				// With copying disabled (KIP-950) local data expires by
				// retention.* only (RetentionPass), as in Kafka 3.9. Local
				// segments go only once their copy is in the manifest,
				// which CopyOnce committed before.
				lim := retention.EffectiveLocal(cfg.localRetentionMs, cfg.localRetentionByte, cfg.retentionMs, cfg.retentionBytes)
				cut, moved, err := retention.ApplyLocal(p, tp, lim, b.now())
				switch {
				case err != nil:
					b.log.Error("tiering: local retention failed", "topic", p.Topic, "partition", p.Index, "err", err)
				case moved:
					b.log.Info("tiering: local segments deleted after copy", "topic", p.Topic, "partition", p.Index, "local_start_offset", cut)
				}
			}
			if _, err := tp.MaybeSweep(ctx, sweepEvery, sweepGrace); err != nil && ctx.Err() == nil {
				b.log.Warn("tiering: sweep failed", "topic", p.Topic, "partition", p.Index, "err", err)
			}
		}
	}
}

// remoteRead is one partition's read from the bucket, running beside the
// Fetch that asked for it: a Fetch naming several remote partitions reads
// them all at once, and a slow GET holds none of the others.
type remoteRead struct {
	done     chan struct{} // closed when recs/err are set
	waiting  chan struct{} // closed if the read has to wait for the bucket
	waitOnce sync.Once
	cancel   context.CancelFunc
	recs     tiering.Records
	aborted  []kmsg.FetchResponseTopicPartitionAbortedTransaction // read_committed
	err      error
}

// startRemoteRead starts reading a fetch below the local log start from the
// bucket, on the bounded pool of remote readers (remote.log.reader.threads),
// within the fetch's deadline; finished (may be nil) gets a value when it
// ends. With committed (read_committed) it stops at the last stable offset
// and lists the aborted transactions of what it read (fetch_txn.go). Reads through the connection's session continue each other, so its
// streams fetch ahead of the consumer.
func (b *Broker) startRemoteRead(sess *tiering.Session, deadline time.Time, p *partition.Partition, offset int64, maxBytes int, committed bool, finished chan<- struct{}) *remoteRead {
	rr := &remoteRead{done: make(chan struct{}), waiting: make(chan struct{})}
	ctx, cancel := context.WithDeadline(b.ctx, deadline)
	rr.cancel = cancel
	wait := func() { rr.waitOnce.Do(func() { close(rr.waiting) }) }
	started := b.goBackground(func() {
		defer func() {
			cancel()
			close(rr.done)
			if finished != nil {
				finished <- struct{}{}
			}
		}()
		select {
		case b.remoteReads <- struct{}{}:
		default:
			wait() // every reader is busy
			select {
			case b.remoteReads <- struct{}{}:
			case <-ctx.Done():
				rr.err = ctx.Err()
				return
			}
		}
		defer func() { <-b.remoteReads }()
		if !committed {
			rr.recs, rr.err = p.ReadRemote(ctx, sess, offset, maxBytes, wait)
			return
		}
		rr.recs, rr.err = p.ReadRemoteCommitted(ctx, sess, offset, maxBytes, wait)
		if rr.err == nil && rr.recs.Size > 0 {
			if rr.aborted, rr.err = abortedFor(ctx, p, offset, rr.recs); rr.err != nil {
				rr.recs = tiering.Records{}
			}
		}
	})
	if !started {
		cancel()
		rr.err = context.Canceled // closing
		close(rr.done)
		if finished != nil {
			finished <- struct{}{}
		}
	}
	return rr
}

func (rr *remoteRead) finished() bool {
	select {
	case <-rr.done:
		return true
	default:
		return false
	}
}

// tierSession is the connection's remote-read session, opened on its first
// remote fetch; closeTierSession (when the connection goes) stops whatever
// it was fetching ahead.
func (c *conn) tierSession() *tiering.Session {
	if c.remoteSess == nil && c.b.tier != nil {
		c.remoteSess = c.b.tier.NewSession()
	}
	return c.remoteSess
}

func (c *conn) closeTierSession() {
	if c.remoteSess != nil {
		c.remoteSess.Close()
	}
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
	for _, p := range b.topics.allPartitions() {
		if tp := p.Tier(); tp != nil && tp.LastError() != nil {
			errs = append(errs, fmt.Sprintf("%s-%d: %v", p.Topic, p.Index, tp.LastError()))
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
func tierStats(p *partition.Partition, tp *tiering.Partition) (remoteBytes, lagBytes int64) {
	m := tp.Manifest()
	for _, s := range m.Readable() {
		remoteBytes += s.Size
	}
	end := m.EndOffset()
	for _, s := range p.Segments() {
		if s.NextOffset > end {
			lagBytes += s.Size
		}
	}
	return remoteBytes, lagBytes
}

// RemoteReaderStats is the remote readers' own accounting (streams, GETs in
// flight, memory held beside the chunk cache); zero without tiered storage.
func (b *Broker) RemoteReaderStats() tiering.Stats {
	if b.tier == nil {
		return tiering.Stats{}
	}
	return b.tier.Stats()
}

// WaitRemoteReadersIdle waits until no remote reader holds memory or has a
// GET in flight: after every consumer connection has gone, nothing is
// fetched ahead any more.
func (b *Broker) WaitRemoteReadersIdle(ctx context.Context) error {
	if b.tier == nil {
		return nil
	}
	return b.tier.WaitIdle(ctx)
}
