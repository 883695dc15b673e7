package broker

import (
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/coord"
)

// reg builds a live broker set from node id → broker epoch pairs.
func reg(pairs ...int64) []coord.BrokerInfo {
	var out []coord.BrokerInfo
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, coord.BrokerInfo{NodeID: int32(pairs[i]), Epoch: pairs[i+1]})
	}
	return out
}

// TestControllerBaseline: a new controller term compares the live brokers
// with the set this broker saw rejoinWindow (2 × broker.session.timeout.ms)
// ago, so a broker that re-registered while no controller was serving —
// the old controller's lock still held by its dead process's session — is
// handled as rejoined. Before, a term started from nothing and such a
// broker stayed in its ISRs, as leader too, with a wiped log (e2e's
// TestClusterWipedFollower lost every acknowledged record of a partition).
func TestControllerBaseline(t *testing.T) {
	c := &controller{b: &Broker{settings: brokerSettings{sessionTimeoutMs: 3000}}}
	t0 := time.Unix(1000, 0)
	if got := c.baseline(t0); got != nil {
		t.Fatalf("baseline before anything was seen: %v", got)
	}
	c.observeBrokers(reg(1, 10, 2, 11, 3, 12), t0)
	// Broker 1 (the controller) is killed and restarted with a wiped disk
	// at once: its new registration appears while its old session still
	// holds the controller lock.
	c.observeBrokers(reg(1, 20, 2, 11, 3, 12), t0.Add(500*time.Millisecond))
	// The old session lapses; broker 2 wins the lock 3.1 s later.
	start := t0.Add(3600 * time.Millisecond)
	base := c.baseline(start)
	if !slices.Equal(base, reg(1, 10, 2, 11, 3, 12)) {
		t.Fatalf("baseline at the new term: %v", base)
	}
	changes := placement.ChangedBrokers(base, reg(1, 20, 2, 11, 3, 12))
	if !slices.Equal(changes.Rejoined, []int32{1}) {
		t.Fatalf("the new term sees %+v, want broker 1 rejoined", changes)
	}

	// Long after, the old sets are pruned: the baseline is the set as it
	// was at now - window, and a term then sees no change.
	later := t0.Add(time.Minute)
	c.observeBrokers(reg(1, 20, 2, 11, 3, 12), later.Add(-10*time.Second))
	if got := c.baseline(later); !slices.Equal(got, reg(1, 20, 2, 11, 3, 12)) {
		t.Fatalf("baseline a minute later: %v", got)
	}
	if n := len(c.seen.lists); n != 1 {
		t.Fatalf("%d sets kept, want only the baseline", n)
	}

	// The window slides: sets seen within it stay; the newest older one is
	// the baseline.
	c.observeBrokers(reg(1, 20, 2, 30), later.Add(-4*time.Second)) // broker 3 gone, 2 re-registered
	c.observeBrokers(reg(1, 20, 2, 30, 3, 31), later.Add(-time.Second))
	if got := c.baseline(later); !slices.Equal(got, reg(1, 20, 2, 11, 3, 12)) {
		t.Fatalf("baseline with changes inside the window: %v", got)
	}

	// A broker first seen inside the window (the cluster, or this broker,
	// just started) counts with its first registration: broker 2 seen at
	// epoch 22, then re-registered at 35, is a rejoin even though the
	// oldest set this broker saw did not list it.
	young := &controller{b: c.b}
	y0 := time.Unix(5000, 0)
	young.observeBrokers(reg(1, 20), y0)
	young.observeBrokers(reg(1, 20, 2, 22, 3, 24), y0.Add(10*time.Millisecond))
	young.observeBrokers(reg(1, 20, 2, 35, 3, 24), y0.Add(time.Second))
	ch := placement.ChangedBrokers(young.baseline(y0.Add(1100*time.Millisecond)), reg(1, 20, 2, 35, 3, 24))
	if !slices.Equal(ch.Rejoined, []int32{2}) || len(ch.Gone) != 0 {
		t.Fatalf("a young broker's term sees %+v, want broker 2 rejoined", ch)
	}
	changes = placement.ChangedBrokers(c.baseline(later), reg(1, 20, 2, 30, 3, 31))
	if !slices.Equal(changes.Rejoined, []int32{2, 3}) || len(changes.Gone) != 0 {
		t.Fatalf("changes inside the window: %+v", changes)
	}

	// At a term's start a broker that was not registered in the baseline
	// (it, or this broker, just started) is not a rejoin, nor is one that
	// only replaced its session (same incarnation, new epoch: a pause, a
	// Consul outage); one that restarted (new incarnation) is.
	inc := func(info []coord.BrokerInfo, incs ...string) []coord.BrokerInfo {
		for i := range info {
			info[i].Incarnation = incs[i]
		}
		return info
	}
	base = termBaseline(inc(reg(1, 10, 2, 11), "a", "b"), inc(reg(1, 20, 2, 21, 3, 12), "a", "B", "c"))
	changes = placement.ChangedBrokers(base, inc(reg(1, 20, 2, 21, 3, 12), "a", "B", "c"))
	if !slices.Equal(changes.Rejoined, []int32{2}) || len(changes.Gone) != 0 {
		t.Fatalf("term baseline: %+v, want only broker 2 (restarted) rejoined", changes)
	}
	if termBaseline(nil, reg(1, 10)) != nil {
		t.Fatalf("no baseline became one")
	}
}
