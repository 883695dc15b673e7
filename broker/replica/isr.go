package replica

import (
	"fmt"
	"slices"
	"time"

	"github.com/strata-broker/strata/coord"
)

// ChangeKind says which way a proposal changes the ISR.
type ChangeKind int

const (
	// Expand adds one caught-up follower (Kafka's PendingExpandIsr).
	Expand ChangeKind = iota + 1
	// Shrink removes followers that lag (Kafka's PendingShrinkIsr).
	Shrink
)

func (k ChangeKind) String() string {
	switch k {
	case Expand:
		return "expand"
	case Shrink:
		return "shrink"
	}
	return fmt.Sprintf("change(%d)", int(k))
}

// Proposal is one ISR change by the leader, Kafka's AlterPartition request
// without the controller in between: the caller writes Meta with
// coord.UpdatePartition(ctx, topic, Meta, coord.AsLeader), whose
// check-and-set on PartitionEpoch and leader-epoch fence play the
// controller's part (INVALID_UPDATE_VERSION, FENCED_LEADER_EPOCH).
type Proposal struct {
	Kind ChangeKind
	// Meta is the whole new partition state: the committed one with only the
	// ISR changed. Leader and LeaderEpoch are this leader's; PartitionEpoch
	// is the committed epoch the change is based on (coord stores it with
	// PartitionEpoch+1).
	Meta coord.PartitionMeta
	// Added is the follower an Expand adds.
	Added int32
	// Removed are the followers a Shrink removes, in ISR order.
	Removed []int32
}

func (l *Leader) propose(kind ChangeKind, isr []int32, added int32, removed []int32) *Proposal {
	m := l.meta.Clone()
	m.ISR = isr
	p := Proposal{Kind: kind, Meta: m, Added: added, Removed: removed}
	if kind == Shrink {
		p.Added = -1
	}
	l.pending = &pendingChange{proposal: p, added: added}
	c := p.clone()
	return &c
}

func (p Proposal) clone() Proposal {
	p.Meta = p.Meta.Clone()
	p.Removed = slices.Clone(p.Removed)
	return p
}

// maybeExpand is Kafka's maybeExpandIsr: with no change in flight, a
// follower outside the committed ISR joins once it is KIP-903-eligible, its
// log end offset has reached the high watermark, and it has reached the
// start of the current leader epoch (otherwise it could be elected while
// missing committed data between the previous leader's high watermark and
// log end; Kafka's isFollowerInSync). The lag time is not checked, as in
// Kafka: the follower's own view of being in sync is the high watermark.
func (l *Leader) maybeExpand(id int32) *Proposal {
	if l.pending != nil || slices.Contains(l.meta.ISR, id) {
		return nil
	}
	f := l.followers[id]
	if !f.eligible || f.leo < l.hw || f.leo < l.epochStart {
		return nil
	}
	isr := append(slices.Clone(l.meta.ISR), id)
	return l.propose(Expand, isr, id, nil)
}

// InFlight is the ISR change written or to be written, if any.
func (l *Leader) InFlight() (Proposal, bool) {
	if l.pending == nil {
		return Proposal{}, false
	}
	return l.pending.proposal.clone(), true
}

// Committed reports that UpdatePartition stored a proposal and returned
// stored. It is ApplyMeta(stored): any newer stored state resolves the
// change in flight (Kafka moves from Pending to Committed on a successful
// AlterPartition response), and a stored state this leader has already seen
// (the Watch delivered it first) changes nothing.
func (l *Leader) Committed(stored coord.PartitionMeta, now time.Time) Result {
	return l.ApplyMeta(stored, now)
}

// Rejected reports that UpdatePartition refused the proposal with
// coord.ErrConflict or coord.ErrFenced and returned stored: the write
// certainly did not land. The change in flight is dropped and the state
// reloads from stored, as Kafka resets to the last committed state on
// INELIGIBLE_REPLICA / OPERATION_NOT_ATTEMPTED and then takes newer metadata;
// the next fetch or Tick decides again from there, never resending the same
// proposal. stored may show that an earlier attempt of the same change
// landed (a retry after Failed); it is adopted like any newer state.
func (l *Leader) Rejected(stored coord.PartitionMeta, now time.Time) Result {
	l.pending = nil
	return l.ApplyMeta(stored, now)
}

// Failed reports that the write of the proposal in flight ended without an
// answer (timeout, lost connection, coord closed): it may or may not have
// landed. The change stays in flight — its maximal ISR keeps the high
// watermark safe either way — and is returned so the caller can write it
// again after a backoff. A retry is safe: if the first attempt landed, the
// retry fails with ErrConflict and Rejected adopts what is stored. ok is
// false when nothing is in flight.
func (l *Leader) Failed() (Proposal, bool) {
	return l.InFlight()
}

// ApplyMeta applies a partition state read from coord (the Watch, or the
// answer to a write). A state older than or as old as the committed one
// (by PartitionEpoch) is ignored, as Kafka skips LeaderAndIsr states with an
// older partition epoch. A newer state with another leader, or with this
// leader at another leader epoch, ends this state (Role NotLeader or
// NewLeaderEpoch). Otherwise it becomes the committed state: the controller
// changed the ISR or the replicas, or a proposal landed. Any change in
// flight is resolved by it and dropped: the newer stored state is the truth
// (Kafka's makeLeader replaces the pending state, and the late
// AlterPartition answer is ignored). New replicas get fresh follower records.
func (l *Leader) ApplyMeta(m coord.PartitionMeta, now time.Time) Result {
	if l.role != Leading || m.PartitionEpoch <= l.meta.PartitionEpoch {
		return l.result(false, nil)
	}
	switch {
	case m.Leader != l.nodeID:
		l.role = NotLeader
		l.pending = nil
		return l.result(false, nil)
	case m.LeaderEpoch != l.meta.LeaderEpoch:
		l.role = NewLeaderEpoch
		l.pending = nil
		return l.result(false, nil)
	}
	l.pending = nil
	l.adopt(m, now)
	return l.result(l.advanceHW(now), nil)
}
