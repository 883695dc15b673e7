package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/localstore"
)

// txnHost is the broker side of the transaction coordinator (broker/txn, a
// pure state machine): it owns the __transaction_state topic, tells the
// coordinator which of its partitions this broker leads (loading each on
// election, unloading on resignation, as Kafka's TransactionStateManager
// does), appends every Transition to the id's partition with acks=all before
// completing it, and carries out marker jobs (txn_markers.go) and the
// timeout and expiry timers (txn_expiry.go). The coordinator of a
// transactional id is therefore the leader of its __transaction_state
// partition, on one node and in a cluster alike.
//
// State owners: the coordinator's own mutex for transactions; txnHost.mu for
// which partitions are led at which epoch (the coordinator epoch), the
// timers and the closed flag. Neither lock is held across an append or a
// network call.
type txnHost struct {
	b     *Broker
	c     *txn.Coordinator
	clock clock.Clock
	// stateParts is the partition count of __transaction_state.
	stateParts int32

	// wg counts timer functions running now; close waits for them.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		closed bool
		// led is the leader epoch of each __transaction_state partition
		// this broker leads (loading or loaded).
		led         map[int32]int32
		abortTimer  clock.Timer
		expireTimer clock.Timer
	}
}

// txnStateWriteTimeout bounds how long a __transaction_state append waits
// for the in-sync replicas (Kafka waits request.timeout.ms); a timed-out
// write gets COORDINATOR_NOT_AVAILABLE and the client retries.
const txnStateWriteTimeout = 10 * time.Second

// newTxnHost builds the coordinator with the broker's transaction settings.
// The partition count of an existing __transaction_state wins over
// transaction.state.log.num.partitions, so ids keep the partition their
// records are in (Kafka's getTransactionTopicPartitionCount).
func newTxnHost(b *Broker) (*txnHost, error) {
	s := b.settings
	parts := s.txnStateParts
	if m, err := b.coord.Topic(b.ctx, txn.StateTopic); err == nil && len(m.Partitions) > 0 {
		parts = int32(len(m.Partitions))
	}
	c, err := txn.New(txn.Config{
		MaxTimeout:        time.Duration(s.txnMaxTimeoutMs) * time.Millisecond,
		IDExpiration:      time.Duration(s.txnIDExpirationMs) * time.Millisecond,
		StatePartitions:   parts,
		OffsetsPartitions: s.offsetsTopicParts,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	h := &txnHost{b: b, c: c, clock: b.opts.Clock, stateParts: parts}
	h.mu.led = map[int32]int32{}
	return h, nil
}

// start arms the timeout and expiry timers (Serve).
func (h *txnHost) start() {
	h.armAbort()
	h.armExpire()
}

// close stops the timers, waits for a running one, and drops the peer
// connections. The coordinator forgets nothing: the log has it.
func (h *txnHost) close() {
	h.mu.Lock()
	h.mu.closed = true
	for _, t := range []clock.Timer{h.mu.abortTimer, h.mu.expireTimer} {
		if t != nil {
			t.Stop()
		}
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// stateTopicConfigs are the configs __transaction_state is created with, as
// Kafka's TransactionLog: compacted, transaction.state.log.segment.bytes,
// and min.insync.replicas from transaction.state.log.min.isr (capped by the
// replication factor, so a single node can write it).
func (h *txnHost) stateTopicConfigs(rf int16) map[string]string {
	s := h.b.settings
	return map[string]string{
		"cleanup.policy":      "compact",
		"segment.bytes":       strconv.FormatInt(s.txnStateSegmentBytes, 10),
		"min.insync.replicas": strconv.Itoa(int(min(s.txnStateMinISR, int32(rf)))),
	}
}

// ensureStateTopic creates __transaction_state on first need (Kafka creates
// it when a client first asks for a transaction coordinator), with
// transaction.state.log.replication.factor capped by the live brokers. A
// non-controller forwards the creation to the controller.
func (h *txnHost) ensureStateTopic(ctx context.Context) (*topic, error) {
	b := h.b
	if t := b.topics.get(txn.StateTopic); t != nil {
		return t, nil
	}
	rf := min(b.settings.txnStateReplication, int16(max(len(b.topics.liveBrokers()), 1)))
	if _, err := b.createTopic(ctx, txn.StateTopic, h.stateParts, rf, h.stateTopicConfigs(rf)); err != nil && !errors.Is(err, errTopicExists) {
		return nil, fmt.Errorf("create %s: %w", txn.StateTopic, err)
	}
	if t := b.topics.get(txn.StateTopic); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%s is being created", txn.StateTopic)
}

// coordinatorOf is the live broker coordinating a transactional id: the
// leader of its __transaction_state partition, creating the topic first
// if needed.
func (h *txnHost) coordinatorOf(ctx context.Context, transactionalID string) (coordBroker, *kerr.Error, string) {
	if _, err := h.ensureStateTopic(ctx); err != nil {
		return coordBroker{}, kerr.CoordinatorNotAvailable, err.Error()
	}
	return h.b.leaderOf(txn.StateTopic, h.c.PartitionFor(transactionalID))
}

// transactionLeadership tells the coordinator about a change of role of a
// __transaction_state replica (from the registry, like offsetsLeadership).
// A new leadership, or one at a newer leader epoch, loads the partition; a
// repeat at the same epoch changes nothing; losing it unloads.
func (b *Broker) transactionLeadership(topicName string, p *partition.Partition, leading bool) {
	if topicName != txn.StateTopic || b.txn == nil {
		return
	}
	h := b.txn
	epoch := p.LeaderEpoch()
	h.mu.Lock()
	cur, led := h.mu.led[p.Index]
	switch {
	case h.mu.closed:
		h.mu.Unlock()
		return
	case leading && led && cur == epoch:
		h.mu.Unlock()
		return
	case !leading && !led:
		h.mu.Unlock()
		return
	case leading:
		h.mu.led[p.Index] = epoch
		h.c.BeginLoad(p.Index, epoch)
	default:
		delete(h.mu.led, p.Index)
		h.c.Unload(p.Index, cur)
	}
	h.mu.Unlock()
	if leading {
		if !b.goBackground(func() { h.load(p, epoch) }) {
			h.c.Unload(p.Index, epoch)
		}
		return
	}
	b.log.Info("resigned as transaction coordinator", "partition", p.Index, "epoch", cur)
}

// leads reports whether this broker still coordinates partition at epoch.
func (h *txnHost) leads(partition, epoch int32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.mu.led[partition]
	return ok && e == epoch && !h.mu.closed
}

// txnLoadReadBytes is how much of the log one read of a load walks (Kafka's
// transaction.state.log.load.buffer.size is 5 MiB).
const txnLoadReadBytes = 4 << 20

// load replays one __transaction_state partition from its log start to its
// end (Kafka's loadTransactionsForTxnTopicPartition), makes its ids live and
// writes the markers of transactions a previous coordinator left in
// PrepareCommit or PrepareAbort.
func (h *txnHost) load(p *partition.Partition, epoch int32) {
	b := h.b
	start := h.clock.Now()
	idx := p.Index
	end := p.LogEndOffset()
	off := p.LocalLogStartOffset()
	var records, skipped int
	for off < end {
		if b.ctx.Err() != nil || !h.leads(idx, epoch) {
			return
		}
		raw, err := p.ReadUpTo(off, txnLoadReadBytes, end)
		if err != nil {
			b.log.Error("cannot read "+txn.StateTopic, "partition", idx, "offset", off, "err", err)
			return
		}
		stop := false
		next, werr := walkInternalBatches(raw, func(r group.Record) {
			if stop || r.Control {
				return
			}
			records++
			if err := h.c.LoadRecord(idx, epoch, r.Key, r.Value); err != nil {
				if errors.Is(err, txn.ErrBadRecord) || errors.Is(err, txn.ErrUnknownKey) {
					skipped++
					b.log.Warn("skipping a "+txn.StateTopic+" record", "partition", idx, "offset", r.Offset, "err", err)
					return
				}
				stop = true // no longer loading at this epoch
			}
		})
		if werr != nil {
			b.log.Warn("skipping undecodable "+txn.StateTopic+" batches", "partition", idx, "offset", off, "err", werr)
		}
		if stop {
			return
		}
		if next <= off {
			// Nothing whole to read: a batch past the read size, or a
			// damaged tail. Kafka fails the load; we stop reading and
			// use what came before.
			b.log.Error("cannot read past a "+txn.StateTopic+" batch", "partition", idx, "offset", off)
			break
		}
		off = next
	}
	jobs, err := h.c.FinishLoad(idx, epoch, h.clock.Now())
	if err != nil {
		// Unloaded or re-elected meanwhile.
		return
	}
	b.log.Info("loaded transaction coordinator partition", "partition", idx, "epoch", epoch, "records", records, "skipped", skipped,
		"markers_to_write", len(jobs), "took", h.clock.Now().Sub(start))
	for _, j := range jobs {
		h.startMarkers(j)
	}
}

// write appends a transition's record to its __transaction_state
// partition at the transition's coordinator epoch and waits for the
// in-sync replicas; the error is what Complete gets.
func (h *txnHost) write(t *txn.Transition) *kerr.Error {
	b := h.b
	_, p := b.topics.partition(txn.StateTopic, t.Partition)
	if p == nil {
		return kerr.NotLeaderForPartition
	}
	ctx, cancel := context.WithTimeout(b.ctx, txnStateWriteTimeout)
	defer cancel()
	batch := buildStateBatch(t.Key, t.Value, h.clock.Now().UnixMilli())
	if _, err := p.AppendInternalAt(ctx, batch, t.CoordinatorEpoch); err != nil {
		kerrv := partition.KafkaError(err)
		if kerrv != kerr.NotLeaderForPartition {
			b.log.Warn("cannot write "+txn.StateTopic, "partition", t.Partition, "transactional_id", t.TransactionalID, "err", err)
		}
		return kerrv
	}
	return nil
}

// apply writes t and completes it; a completion that carries markers starts
// them in the background.
func (h *txnHost) apply(t *txn.Transition) txn.Completion {
	res := h.c.Complete(t, h.write(t), h.clock.Now())
	if res.Markers != nil {
		h.startMarkers(res.Markers)
	}
	return res
}

// buildStateBatch encodes one __transaction_state record (key and value from
// broker/txn, a nil value a tombstone) as an uncompressed RecordBatch v2
// with kmsg's types; the log assigns the base offset and leader epoch.
func buildStateBatch(key, value []byte, nowMs int64) []byte {
	rec := kmsg.Record{Key: key, Value: value}
	inner := rec.AppendTo(nil)
	rec.Length = int32(len(inner) - 1) // AppendTo wrote a zero length first
	body := rec.AppendTo(nil)
	rb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		FirstTimestamp:       nowMs,
		MaxTimestamp:         nowMs,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              body,
	}
	rb.Length = int32(localstore.BatchHeaderSize - 12 + len(body))
	b := rb.AppendTo(nil)
	localstore.SetCRC(b)
	return b
}

func txnTP(topic string, p int32) txn.TopicPartition {
	return txn.TopicPartition{Topic: topic, Partition: p}
}
