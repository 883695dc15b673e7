package replica

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

// At most one ISR change in flight: while an expansion is pending, neither
// another caught-up follower nor a lagging one produces a proposal.
func TestOneProposalInFlight(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 4}, 1, 2, 3, 4), 100, 100, 100)
	h.fetch(4, 100, 0)
	r := h.fetch(2, 100, time.Second)
	if r.Proposal == nil || r.Proposal.Added != 2 {
		t.Fatalf("first expansion: %+v", r)
	}
	first := *r.Proposal
	if r := h.fetch(3, 100, 2*time.Second); r.Proposal != nil {
		t.Fatalf("second proposal while one is in flight: %+v", r.Proposal)
	}
	// Follower 4 stops fetching; past the lag time Tick would shrink it.
	h.appendTo(120, 3*time.Second)
	if r := h.l.Tick(at(30 * time.Second)); r.Proposal != nil {
		t.Fatalf("shrink while an expansion is in flight: %+v", r.Proposal)
	}
	if p, ok := h.l.InFlight(); !ok || p.Added != 2 {
		t.Fatalf("in flight: %+v %v", p, ok)
	}
	// The expansion commits; now the next decisions happen, one at a time.
	h.l.Committed(storedAs(first.Meta), at(31*time.Second))
	r = h.l.Tick(at(31 * time.Second))
	if r.Proposal == nil || r.Proposal.Kind != Shrink {
		t.Fatalf("after commit, shrink: %+v", r.Proposal)
	}
	// 2 and 4 both lag (2 fetched 100 at 1s, leader is at 120).
	if !slices.Equal(r.Proposal.Removed, []int32{4, 2}) || !slices.Equal(r.Proposal.Meta.ISR, []int32{1}) {
		t.Fatalf("shrink %+v", r.Proposal)
	}
	if r.Proposal.Meta.PartitionEpoch != 8 {
		t.Fatalf("shrink based on epoch %d, want 8", r.Proposal.Meta.PartitionEpoch)
	}
}

// A rejected proposal (stale partition epoch: the controller changed the
// partition meanwhile) reloads from the stored state; the next decision is
// based on it, never a resend of the rejected proposal.
func TestRejectedReloads(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2, 3), 100, 100, 100)
	r := h.fetch(2, 100, time.Second)
	if r.Proposal == nil {
		t.Fatal("no proposal")
	}
	// Meanwhile the controller added replica 4 (epoch 8): the write conflicts.
	stored := meta([]int32{1}, 1, 2, 3, 4)
	stored.PartitionEpoch = 8
	r = h.l.Rejected(stored, at(2*time.Second))
	if r.Role != Leading {
		t.Fatalf("role %v", r.Role)
	}
	if _, ok := h.l.InFlight(); ok {
		t.Fatal("rejected proposal still in flight")
	}
	if m := h.l.Meta(); m.PartitionEpoch != 8 || !slices.Equal(m.Replicas, []int32{1, 2, 3, 4}) {
		t.Fatalf("not reloaded: %+v", m)
	}
	r = h.fetch(2, 100, 3*time.Second)
	if r.Proposal == nil || r.Proposal.Meta.PartitionEpoch != 8 || !slices.Equal(r.Proposal.Meta.Replicas, []int32{1, 2, 3, 4}) {
		t.Fatalf("new proposal not based on the stored state: %+v", r.Proposal)
	}
	// Replica 4 is new: it can fetch now.
	if _, err := h.l.FollowerFetch(Fetch{ReplicaID: 4, BrokerEpoch: 104, FetchOffset: 100,
		Registered: Registration{Alive: true, Epoch: 104}, Now: at(4 * time.Second)}); err != nil {
		t.Fatalf("new replica refused: %v", err)
	}
}

// Rejected with the same stored state (ErrFenced because the session is
// gone, nothing changed): the change is dropped, the committed state stays.
func TestRejectedSameEpoch(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	r := h.fetch(2, 100, time.Second)
	r = h.l.Rejected(meta([]int32{1}, 1, 2), at(2*time.Second))
	if _, ok := h.l.InFlight(); ok || r.Role != Leading || h.l.ISRSize() != 1 {
		t.Fatalf("after rejection: %+v in flight %v", r, ok)
	}
	h.appendTo(101, 3*time.Second)
	h.wantHW(100) // follower 2 no longer in the maximal ISR, but caught up and eligible: HW waits for it
}

// Failed (outcome unknown) keeps the change in flight and hands back the
// same proposal; a retry that conflicts because the first attempt landed is
// resolved by Rejected adopting the stored state.
func TestFailedKeepsInFlight(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	r := h.fetch(2, 100, time.Second)
	p1 := *r.Proposal
	p2, ok := h.l.Failed()
	if !ok || p2.Added != p1.Added || !slices.Equal(p2.Meta.ISR, p1.Meta.ISR) || p2.Meta.PartitionEpoch != p1.Meta.PartitionEpoch {
		t.Fatalf("Failed returned %+v %v, want %+v", p2, ok, p1)
	}
	if r := h.fetch(2, 100, 2*time.Second); r.Proposal != nil {
		t.Fatalf("new proposal while the failed one is in flight: %+v", r.Proposal)
	}
	h.appendTo(105, 3*time.Second)
	h.wantHW(100) // still counted
	// The retry conflicts: stored shows the first attempt landed.
	h.l.Rejected(storedAs(p1.Meta), at(4*time.Second))
	if m := h.l.Meta(); !slices.Equal(m.ISR, []int32{1, 2}) || m.PartitionEpoch != 8 {
		t.Fatalf("stored state not adopted: %+v", m)
	}
	if _, ok := h.l.Failed(); ok {
		t.Fatal("still in flight")
	}
}

// The Watch may deliver the leader's own write before UpdatePartition
// returns; the late Committed then changes nothing.
func TestWatchBeforeCommitted(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	r := h.fetch(2, 100, time.Second)
	stored := storedAs(r.Proposal.Meta)
	h.l.ApplyMeta(stored, at(2*time.Second))
	if _, ok := h.l.InFlight(); ok || h.l.ISRSize() != 2 {
		t.Fatal("watch did not resolve the change")
	}
	// A new change may start meanwhile (follower 2 lags).
	h.appendTo(200, 3*time.Second)
	r = h.l.Tick(at(20 * time.Second))
	if r.Proposal == nil || r.Proposal.Meta.PartitionEpoch != 8 {
		t.Fatalf("shrink: %+v", r.Proposal)
	}
	h.l.Committed(stored, at(21*time.Second)) // late answer of the first write
	if p, ok := h.l.InFlight(); !ok || p.Kind != Shrink {
		t.Fatal("late Committed of an older write dropped the change in flight")
	}
}

func TestApplyMeta(t *testing.T) {
	base := meta([]int32{1, 2}, 1, 2, 3)
	tests := []struct {
		name     string
		change   func(*coord.PartitionMeta)
		wantRole Role
		wantISR  []int32
	}{
		{"older epoch ignored", func(m *coord.PartitionMeta) { m.PartitionEpoch = 6; m.ISR = []int32{1} }, Leading, []int32{1, 2}},
		{"same epoch ignored", func(m *coord.PartitionMeta) { m.ISR = []int32{1} }, Leading, []int32{1, 2}},
		{"controller shrank the ISR", func(m *coord.PartitionMeta) { m.PartitionEpoch = 8; m.ISR = []int32{1} }, Leading, []int32{1}},
		{"leadership moved", func(m *coord.PartitionMeta) { m.PartitionEpoch = 8; m.Leader = 2; m.LeaderEpoch = 6 }, NotLeader, []int32{1, 2}},
		{"offline", func(m *coord.PartitionMeta) { m.PartitionEpoch = 8; m.Leader = -1; m.LeaderEpoch = 6 }, NotLeader, []int32{1, 2}},
		{"re-elected at a new epoch", func(m *coord.PartitionMeta) { m.PartitionEpoch = 8; m.LeaderEpoch = 6 }, NewLeaderEpoch, []int32{1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, base, 100, 100, 100)
			m := base.Clone()
			tc.change(&m)
			r := h.l.ApplyMeta(m, at(time.Second))
			if r.Role != tc.wantRole || h.l.Role() != tc.wantRole {
				t.Fatalf("role %v, want %v", r.Role, tc.wantRole)
			}
			if !slices.Equal(h.l.Meta().ISR, tc.wantISR) {
				t.Fatalf("ISR %v, want %v", h.l.Meta().ISR, tc.wantISR)
			}
			if tc.wantRole != Leading {
				if _, err := h.l.FollowerFetch(Fetch{ReplicaID: 2, BrokerEpoch: 102, FetchOffset: 1, Registered: h.reg[2], Now: at(2 * time.Second)}); !errors.Is(err, ErrNotLeading) {
					t.Fatalf("fetch on an ended state: %v", err)
				}
				if _, err := h.l.LeaderAppend(200, at(2*time.Second)); !errors.Is(err, kerr.NotLeaderForPartition) {
					t.Fatalf("append on an ended state: %v", err)
				}
			}
		})
	}
}

// A controller-removed replica is forgotten; its fetches are refused.
func TestApplyMetaReplicasChange(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2, 3}, 1, 2, 3), 100, 100, 100)
	m := meta([]int32{1, 2}, 1, 2)
	m.PartitionEpoch = 8
	h.l.ApplyMeta(m, at(time.Second))
	if _, err := h.l.FollowerFetch(Fetch{ReplicaID: 3, BrokerEpoch: 103, FetchOffset: 100, Registered: h.reg[3], Now: at(2 * time.Second)}); !errors.Is(err, kerr.UnknownLeaderEpoch) {
		t.Fatalf("removed replica: %v", err)
	}
	if got := len(h.l.Followers()); got != 1 {
		t.Fatalf("%d followers", got)
	}
}

// Tick never removes the leader; an ISR of the leader alone never shrinks.
func TestTickShrink(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	if r := h.l.Tick(at(time.Hour)); r.Proposal != nil {
		t.Fatalf("leader-only ISR shrank: %+v", r.Proposal)
	}
	h = newHarness(t, meta([]int32{1, 2, 3}, 1, 2, 3), 100, 100, 100)
	// A follower at the leader's end is in sync however long ago it fetched.
	h.fetch(2, 100, 0)
	r := h.l.Tick(at(time.Hour))
	if r.Proposal == nil || !slices.Equal(r.Proposal.Meta.ISR, []int32{1, 2}) {
		t.Fatalf("shrink: %+v", r.Proposal)
	}
	if !slices.Contains(r.Proposal.Meta.ISR, 1) {
		t.Fatal("leader removed")
	}
}

// Kafka's "wait for a caught-up replica to join" rule: a follower outside
// the ISR that is caught up and eligible holds the high watermark, so it can
// reach it and join even while the leader keeps appending; once it stops
// being caught up it no longer holds it (Tick re-evaluates).
func TestHWWaitsForJoiningFollower(t *testing.T) {
	h := newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	h.reg[2] = Registration{Alive: true, Epoch: 102, ShuttingDown: false}
	h.fetch(2, 100, time.Second) // proposes; reject to leave it outside
	h.l.Rejected(meta([]int32{1}, 1, 2), at(time.Second))
	h.appendTo(130, 2*time.Second)
	h.wantHW(100)
	h.l.Tick(at(5 * time.Second))
	h.wantHW(100)
	r := h.l.Tick(at(12 * time.Second)) // 11 s since it was caught up
	if !r.HWAdvanced || r.HighWatermark != 130 {
		t.Fatalf("HW still held by a lagging non-ISR follower: %+v", r)
	}
	// An ineligible follower never holds it.
	h = newHarness(t, meta([]int32{1}, 1, 2), 100, 100, 100)
	h.reg[2] = Registration{Alive: true, Epoch: 102, ShuttingDown: true}
	h.fetch(2, 100, time.Second)
	h.appendTo(130, 2*time.Second)
	h.wantHW(130)
}

func TestAcks(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2, 3}, 1, 2, 3), 100, 100, 100)
	if err := h.l.CheckMinISR(3); err != nil {
		t.Fatalf("min ISR 3 with 3 in ISR: %v", err)
	}
	if err := h.l.CheckMinISR(5); err != nil {
		t.Fatalf("min ISR above the replication factor is capped: %v", err)
	}
	h.appendTo(110, time.Second)
	if done, _ := h.l.AcksAll(110, 2); done || h.l.IsCommitted(100) {
		t.Fatal("acked before the followers have it")
	}
	h.fetch(2, 110, 2*time.Second)
	h.fetch(3, 110, 2*time.Second)
	if done, err := h.l.AcksAll(110, 2); !done || err != nil || !h.l.IsCommitted(109) || h.l.IsCommitted(110) {
		t.Fatalf("acks: done %v err %v", done, err)
	}
	// 2 and 3 stop; the shrink commits; ISR = {1}.
	h.appendTo(120, 3*time.Second)
	r := h.l.Tick(at(20 * time.Second))
	h.l.Committed(storedAs(r.Proposal.Meta), at(21*time.Second))
	if err := h.l.CheckMinISR(2); err != kerr.NotEnoughReplicas {
		t.Fatalf("before append with ISR {1}, min 2: %v", err)
	}
	if done, err := h.l.AcksAll(120, 2); !done || err != kerr.NotEnoughReplicasAfterAppend {
		t.Fatalf("after append: done %v err %v", done, err)
	}
	if done, err := h.l.AcksAll(120, 1); !done || err != nil {
		t.Fatalf("min 1: done %v err %v", done, err)
	}
}

// A pending shrink still counts for NOT_ENOUGH_REPLICAS_AFTER_APPEND (the
// maximal ISR), the committed ISR for NOT_ENOUGH_REPLICAS.
func TestAcksPendingShrink(t *testing.T) {
	h := newHarness(t, meta([]int32{1, 2}, 1, 2), 100, 100, 100)
	h.appendTo(110, time.Second)
	r := h.l.Tick(at(20 * time.Second))
	if r.Proposal == nil {
		t.Fatal("no shrink")
	}
	if err := h.l.CheckMinISR(2); err != nil {
		t.Fatalf("committed ISR is still {1,2}: %v", err)
	}
	if done, _ := h.l.AcksAll(110, 2); done {
		t.Fatal("acked with follower 2 still in the maximal ISR and behind")
	}
}
