package partition

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/replica"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/localstore"
)

// Replication state of a partition with more than one replica. The
// decisions (high watermark, ISR changes, acks=all) are broker/replica's
// pure state machine; this file feeds it the facts and acts on its answers:
// completes acks=all produces, wakes fetches, hands ISR proposals to the
// broker (which writes them to coord).
//
// A partition with one replica (every partition on a single node) never
// touches this: its high watermark is its log end offset.

// repState is guarded by its mu; lock order Partition.mu → repState.mu.
type repState struct {
	mu sync.Mutex
	// leading is written under mu and read without it (the produce and
	// fetch paths ask on every request).
	leading  atomic.Bool
	leaderID int32
	leader   *replica.Leader // when leading
	acks     []*ackWaiter
	// checkpointed is the high watermark last written to disk.
	checkpointed int64
}

// ackWaiter is an acks=all produce (or internal append) waiting for the high
// watermark to reach end.
type ackWaiter struct {
	end    int64
	minISR int
	done   chan *kerr.Error // buffered 1
}

// Replicated reports whether the partition has more than one replica.
func (p *Partition) Replicated() bool { return p.replicated.Load() }

// IsLeader reports whether this replica is the partition's leader.
func (p *Partition) IsLeader() bool {
	if !p.replicated.Load() {
		return true
	}
	return p.rep.leading.Load()
}

// Leader is the node id this replica believes leads the partition.
func (p *Partition) Leader() int32 {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	return p.rep.leaderID
}

// BecomeLeader makes this replica the leader of a replicated partition at
// meta's leader epoch (Kafka's Partition.makeLeader): the epoch is recorded
// at the log end offset, followers start afresh, and the high watermark
// starts from what this replica knew (its checkpoint or what it learnt as a
// follower) and advances as followers fetch.
func (p *Partition) BecomeLeader(meta coord.PartitionMeta, self int32, lagMax time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leading.Load() && p.rep.leader != nil && p.rep.leader.Meta().LeaderEpoch == meta.LeaderEpoch {
		p.applyLocked(meta)
		return nil
	}
	p.failAcksLocked(kerr.NotLeaderForPartition)
	p.replicated.Store(len(meta.Replicas) > 1)
	p.leaderEpoch.Store(meta.LeaderEpoch)
	p.isrSize.Store(int32(len(meta.ISR)))
	if tp := p.tier.Load(); tp != nil {
		tp.SetLeaderEpoch(meta.LeaderEpoch)
	}
	p.rep.leading.Store(true)
	p.rep.leaderID = self
	if len(meta.Replicas) <= 1 {
		p.rep.leader = nil
		return nil
	}
	if err := p.log.AssignLeaderEpoch(meta.LeaderEpoch); err != nil {
		p.rep.leading.Store(false)
		return fmt.Errorf("partition: %s-%d: record leader epoch %d: %w", p.Topic, p.Index, meta.LeaderEpoch, err)
	}
	leo := p.log.LogEndOffset()
	l, err := replica.NewLeader(replica.Config{
		Meta: meta, NodeID: self, LogEndOffset: leo, HighWatermark: max(p.hw.Load(), 0),
		LeaderEpochStartOffset: leo, LagTimeMax: lagMax, Now: p.clock.Now(),
	})
	if err != nil {
		p.rep.leading.Store(false)
		return fmt.Errorf("partition: %s-%d: become leader: %w", p.Topic, p.Index, err)
	}
	p.rep.leader = l
	p.hw.Store(l.HighWatermark())
	p.logger.Info("became leader", "topic", p.Topic, "partition", p.Index, "leader_epoch", meta.LeaderEpoch, "isr", meta.ISR, "high_watermark", l.HighWatermark())
	return nil
}

// BecomeFollower makes this replica a follower of meta.Leader (Kafka's
// makeFollower): pending acks=all produces fail with NOT_LEADER_OR_FOLLOWER,
// and the broker's fetcher reconciles the log with the new leader
// (truncation) before it fetches.
func (p *Partition) BecomeFollower(meta coord.PartitionMeta) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	p.failAcksLocked(kerr.NotLeaderForPartition)
	wasLeader := p.rep.leading.Load()
	p.replicated.Store(true)
	p.rep.leading.Store(false)
	p.rep.leader, p.rep.leaderID = nil, meta.Leader
	p.leaderEpoch.Store(meta.LeaderEpoch)
	p.isrSize.Store(int32(len(meta.ISR)))
	if hw := p.hw.Load(); hw < 0 || hw > p.log.LogEndOffset() {
		p.hw.Store(p.log.LogEndOffset())
	}
	if wasLeader {
		p.logger.Info("became follower", "topic", p.Topic, "partition", p.Index, "leader", meta.Leader, "leader_epoch", meta.LeaderEpoch)
	}
	p.wake()
}

// ApplyLeaderMeta applies a newer committed state while leading at the same
// epoch (the controller removed a dead follower, or an ISR change landed).
// The Role of the result says whether this leadership is over.
func (p *Partition) ApplyLeaderMeta(meta coord.PartitionMeta) replica.Result {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	return p.applyLocked(meta)
}

func (p *Partition) applyLocked(meta coord.PartitionMeta) replica.Result {
	p.isrSize.Store(int32(len(meta.ISR)))
	if p.rep.leader == nil {
		return replica.Result{Role: replica.Leading, HighWatermark: p.HighWatermark()}
	}
	res := p.rep.leader.ApplyMeta(meta, p.clock.Now())
	p.afterLocked(res)
	return res
}

// afterLocked acts on a leader-state result: a moved high watermark
// completes acks=all waiters and wakes consumers.
func (p *Partition) afterLocked(res replica.Result) {
	if !res.HWAdvanced {
		return
	}
	p.hw.Store(res.HighWatermark)
	p.noteHighWatermark()
	p.completeAcksLocked()
	p.wake()
}

func (p *Partition) completeAcksLocked() {
	l := p.rep.leader
	if l == nil || len(p.rep.acks) == 0 {
		return
	}
	kept := p.rep.acks[:0]
	for _, w := range p.rep.acks {
		if done, err := l.AcksAll(w.end, w.minISR); done {
			w.done <- err
			continue
		}
		kept = append(kept, w)
	}
	p.rep.acks = kept
}

func (p *Partition) failAcksLocked(err *kerr.Error) {
	for _, w := range p.rep.acks {
		w.done <- err
	}
	p.rep.acks = nil
}

// FollowerFetch records a follower's replica fetch at fetchOffset (its log
// end offset); the result may carry an ISR proposal for the broker to write.
func (p *Partition) FollowerFetch(f replica.Fetch) (replica.Result, error) {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return replica.Result{Role: replica.NotLeader}, replica.ErrNotLeading
	}
	res, err := p.rep.leader.FollowerFetch(f)
	if err == nil {
		p.afterLocked(res)
	}
	return res, err
}

// Tick lets the leader state see time pass: ISR shrink proposals for
// followers that lag more than replica.lag.time.max.ms.
func (p *Partition) Tick() replica.Result {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return replica.Result{Role: replica.NotLeader}
	}
	res := p.rep.leader.Tick(p.clock.Now())
	p.afterLocked(res)
	return res
}

// ProposalCommitted, ProposalRejected and ProposalFailed report the outcome
// of writing an ISR proposal to coord (see replica.Leader).
func (p *Partition) ProposalCommitted(stored coord.PartitionMeta) replica.Result {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return replica.Result{Role: replica.NotLeader}
	}
	p.isrSize.Store(int32(len(stored.ISR)))
	res := p.rep.leader.Committed(stored, p.clock.Now())
	p.afterLocked(res)
	return res
}

func (p *Partition) ProposalRejected(stored coord.PartitionMeta) replica.Result {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return replica.Result{Role: replica.NotLeader}
	}
	res := p.rep.leader.Rejected(stored, p.clock.Now())
	p.afterLocked(res)
	return res
}

func (p *Partition) ProposalInFlight() (replica.Proposal, bool) {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return replica.Proposal{}, false
	}
	return p.rep.leader.InFlight()
}

// Followers is the leader's view of its followers (empty when following).
func (p *Partition) Followers() []replica.FollowerState {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return nil
	}
	return p.rep.leader.Followers()
}

// checkMinISR is acks=all's check before the append.
func (p *Partition) checkMinISR(minISR int32) *kerr.Error {
	if !p.replicated.Load() {
		if p.isrSize.Load() < minISR {
			return kerr.NotEnoughReplicas
		}
		return nil
	}
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return kerr.NotLeaderForPartition
	}
	return p.rep.leader.CheckMinISR(int(minISR))
}

// leaderAppended tells the leader state about a new log end offset and, for
// acks=all, registers a waiter for end. It returns nil when no wait is
// needed (or the produce is already answered: see the returned error).
// Callers hold p.mu (the append lock), so log end offsets arrive in order.
func (p *Partition) leaderAppended(end int64, acksAll bool, minISR int32) (*ackWaiter, *kerr.Error) {
	if !p.replicated.Load() {
		return nil, nil
	}
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	l := p.rep.leader
	if l == nil {
		return nil, kerr.NotLeaderForPartition
	}
	res, err := l.LeaderAppend(p.log.LogEndOffset(), p.clock.Now())
	if err != nil {
		return nil, kerr.NotLeaderForPartition
	}
	p.afterLocked(res)
	if !acksAll {
		return nil, nil
	}
	if done, kerrv := l.AcksAll(end, int(minISR)); done {
		return nil, kerrv
	}
	w := &ackWaiter{end: end, minISR: int(minISR), done: make(chan *kerr.Error, 1)}
	p.rep.acks = append(p.rep.acks, w)
	return w, nil
}

// waitAcks waits for an acks=all waiter, bounded by ctx: REQUEST_TIMED_OUT
// when the high watermark does not get there in time (Kafka's expired
// DelayedProduce).
func (p *Partition) waitAcks(ctx context.Context, w *ackWaiter) *kerr.Error {
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		p.rep.mu.Lock()
		p.rep.acks = slices.DeleteFunc(p.rep.acks, func(x *ackWaiter) bool { return x == w })
		p.rep.mu.Unlock()
		select {
		case err := <-w.done: // completed meanwhile
			return err
		default:
		}
		return kerr.RequestTimedOut
	}
}

// ReadForFollower reads whole batches from offset up to the log end offset
// (followers replicate past the high watermark).
func (p *Partition) ReadForFollower(offset int64, maxBytes int) (localstore.Slice, error) {
	return p.log.Read(offset, max(maxBytes, 0), p.log.LogEndOffset(), true)
}

// LatestEpoch is the newest leader epoch in this replica's log.
func (p *Partition) LatestEpoch() int32 { return p.log.LatestEpoch() }

// FollowerLog is what the follower-side truncation decisions need.
func (p *Partition) FollowerLog() replica.FollowerLog {
	return replica.FollowerLog{
		LatestEpoch:       p.log.LatestEpoch(),
		LogEndOffset:      p.log.LogEndOffset(),
		HighWatermark:     max(p.hw.Load(), 0),
		EndOffsetForEpoch: p.log.EndOffsetForEpoch,
	}
}

// TruncateTo cuts a follower's log at offset (at a batch boundary) and drops
// leader epochs from there, KIP-101's truncation after a leader change.
func (p *Partition) TruncateTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.log.TruncateTo(offset); err != nil {
		return fmt.Errorf("partition: truncate %s-%d to %d: %w", p.Topic, p.Index, offset, err)
	}
	if p.hw.Load() > p.log.LogEndOffset() {
		p.hw.Store(p.log.LogEndOffset())
	}
	return nil
}

// ResetTo empties a follower's log and restarts it at offset: its fetch
// position fell below the leader's log start (OFFSET_OUT_OF_RANGE).
func (p *Partition) ResetTo(offset int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.log.StartAt(offset); err != nil {
		return err
	}
	p.hw.Store(offset)
	return nil
}

// AppendFollower appends batches fetched from the leader, keeping their
// offsets and epochs, then moves this replica's high watermark to
// min(leaderHW, log end) and its log start up to the leader's (Kafka's
// Partition.appendRecordsToFollowerOrFutureReplica and
// maybeIncrementLogStartOffset). Each batch's CRC is checked first: a
// corrupt batch is an error and nothing of the response is appended.
func (p *Partition) AppendFollower(records []byte, leaderHW, leaderLogStart int64) (int, error) {
	var batches [][]byte
	if len(records) > 0 {
		all, err := localstore.SplitBatches(records)
		if err != nil {
			return 0, fmt.Errorf("partition: follower fetch for %s-%d: %w", p.Topic, p.Index, err)
		}
		for _, b := range all {
			if _, err := localstore.ValidateBatch(b); err != nil {
				return 0, fmt.Errorf("partition: follower fetch for %s-%d: %w", p.Topic, p.Index, err)
			}
		}
		batches = all
	}
	p.mu.Lock()
	if len(batches) > 0 {
		if _, err := p.log.AppendAsFollower(batches); err != nil {
			p.mu.Unlock()
			return 0, err
		}
	}
	leo := p.log.LogEndOffset()
	if hw := min(leaderHW, leo); hw > p.hw.Load() {
		p.hw.Store(hw)
		p.noteHighWatermark()
	}
	var err error
	if leaderLogStart > p.log.LogStartOffset() {
		_, err = p.log.DeleteRecordsBefore(min(leaderLogStart, leo))
	}
	p.mu.Unlock()
	if len(batches) > 0 {
		p.wake()
	}
	return len(batches), err
}

// CheckpointHighWatermark writes the high watermark if it moved since the
// last checkpoint (called on the maintenance tick and at close).
func (p *Partition) CheckpointHighWatermark() error {
	if !p.replicated.Load() {
		return nil
	}
	hw := p.hw.Load()
	p.rep.mu.Lock()
	same := hw == p.rep.checkpointed
	p.rep.mu.Unlock()
	if same || hw < 0 {
		return nil
	}
	if err := p.log.WriteHighWatermark(hw); err != nil {
		return err
	}
	p.rep.mu.Lock()
	p.rep.checkpointed = hw
	p.rep.mu.Unlock()
	return nil
}
