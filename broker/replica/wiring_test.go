package replica

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
)

// The leader state wired to a real coordinator (coord.Embedded) the way the
// broker will use it: a fetch produces a proposal, the proposal is written
// with UpdatePartition(AsLeader), the stored answer goes back in; a
// controller write in between makes the next write conflict and the state
// reload from what is stored.
func TestWiringWithEmbeddedCoord(t *testing.T) {
	ctx := context.Background()
	c, err := coord.OpenEmbedded(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	created, err := c.CreateTopic(ctx, coord.TopicMeta{Name: "orders", Partitions: []coord.PartitionMeta{
		{Partition: 0, Leader: 1, LeaderEpoch: 0, Replicas: []int32{1, 2, 3}, ISR: []int32{1}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	brokers := []coord.BrokerInfo{{NodeID: 1, Epoch: 1}, {NodeID: 2, Epoch: 7}, {NodeID: 3, Epoch: 9}}
	l, err := NewLeader(Config{Meta: created.Partitions[0], NodeID: 1, LogEndOffset: 50, HighWatermark: 50,
		LeaderEpochStartOffset: 0, LagTimeMax: lag, Now: t0})
	if err != nil {
		t.Fatal(err)
	}

	// write plays the caller's part for one proposal.
	write := func(p *Proposal) Result {
		t.Helper()
		stored, err := c.UpdatePartition(ctx, "orders", p.Meta, coord.AsLeader)
		switch {
		case err == nil:
			return l.Committed(stored, at(time.Second))
		case errors.Is(err, coord.ErrConflict), errors.Is(err, coord.ErrFenced):
			return l.Rejected(stored, at(time.Second))
		}
		t.Fatalf("UpdatePartition: %v", err)
		return Result{}
	}

	r, err := l.FollowerFetch(Fetch{ReplicaID: 2, BrokerEpoch: 7, FetchOffset: 50, Registered: RegistrationOf(brokers, 2), Now: at(time.Second)})
	if err != nil || r.Proposal == nil {
		t.Fatalf("fetch: %+v %v", r, err)
	}
	r = write(r.Proposal)
	if got, _ := c.Topic(ctx, "orders"); !slices.Equal(got.Partitions[0].ISR, []int32{1, 2}) || r.Role != Leading {
		t.Fatalf("stored %+v, result %+v", got.Partitions[0], r)
	}
	if m := l.Meta(); m.PartitionEpoch != 1 || !slices.Equal(m.ISR, []int32{1, 2}) {
		t.Fatalf("leader state %+v", m)
	}

	// Follower 3 catches up; before its expansion is written the controller
	// removes 2 (it died).
	r, err = l.FollowerFetch(Fetch{ReplicaID: 3, BrokerEpoch: 9, FetchOffset: 50, Registered: RegistrationOf(brokers, 3), Now: at(2 * time.Second)})
	if err != nil || r.Proposal == nil {
		t.Fatalf("fetch 3: %+v %v", r, err)
	}
	pending := r.Proposal
	ctl, _ := c.Topic(ctx, "orders")
	p := ctl.Partitions[0].Clone()
	p.ISR = []int32{1}
	if _, err := c.UpdatePartition(ctx, "orders", p, coord.AsController); err != nil {
		t.Fatal(err)
	}
	r = write(pending)
	if m := l.Meta(); m.PartitionEpoch != 2 || !slices.Equal(m.ISR, []int32{1}) {
		t.Fatalf("not reloaded after the conflict: %+v", m)
	}
	if _, ok := l.InFlight(); ok {
		t.Fatal("conflicting proposal still in flight")
	}
	// The next fetch from 3 proposes again from the stored state.
	r, err = l.FollowerFetch(Fetch{ReplicaID: 3, BrokerEpoch: 9, FetchOffset: 50, Registered: RegistrationOf(brokers, 3), Now: at(3 * time.Second)})
	if err != nil || r.Proposal == nil || r.Proposal.Meta.PartitionEpoch != 2 {
		t.Fatalf("re-proposal: %+v %v", r.Proposal, err)
	}
	write(r.Proposal)
	if got, _ := c.Topic(ctx, "orders"); !slices.Equal(got.Partitions[0].ISR, []int32{1, 3}) || got.Partitions[0].PartitionEpoch != 3 {
		t.Fatalf("stored %+v", got.Partitions[0])
	}
}
