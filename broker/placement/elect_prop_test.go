package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-broker/strata/coord"
)

func randomPartition(rng *rand.Rand) coord.PartitionMeta {
	ids := rng.Perm(6)
	replicas := make([]int32, 1+rng.IntN(5))
	for i := range replicas {
		replicas[i] = int32(ids[i] + 1)
	}
	var isr []int32
	for _, id := range replicas {
		if rng.IntN(3) > 0 {
			isr = append(isr, id)
		}
	}
	if len(isr) == 0 {
		isr = []int32{replicas[rng.IntN(len(replicas))]}
	}
	rng.Shuffle(len(isr), func(i, j int) { isr[i], isr[j] = isr[j], isr[i] })
	leader := isr[rng.IntN(len(isr))]
	if rng.IntN(5) == 0 {
		leader = -1
	}
	return coord.PartitionMeta{Partition: 1, Leader: leader, LeaderEpoch: int32(rng.IntN(9)), PartitionEpoch: int32(rng.IntN(99)),
		Replicas: replicas, ISR: isr}
}

func randomLive(rng *rand.Rand) Live {
	l := Live{}
	for id := int32(1); id <= 6; id++ {
		switch rng.IntN(4) {
		case 0: // dead
		case 1:
			l[id] = coord.BrokerInfo{NodeID: id, Epoch: 3, ShuttingDown: true}
		default:
			l[id] = coord.BrokerInfo{NodeID: id, Epoch: 3}
		}
	}
	return l
}

// checkElection holds for every election variant.
func checkElection(before coord.PartitionMeta, d Decision, live Live, uncleanAllowed bool, bumpAllowed bool) error {
	m := d.Meta
	same := m.Leader == before.Leader && m.LeaderEpoch == before.LeaderEpoch && slices.Equal(m.ISR, before.ISR)
	switch {
	case d.Changed == same:
		return fmt.Errorf("Changed=%v but the meta is %s", d.Changed, map[bool]string{true: "the same", false: "different"}[same])
	case m.PartitionEpoch != before.PartitionEpoch || m.Partition != before.Partition || !slices.Equal(m.Replicas, before.Replicas):
		return fmt.Errorf("changed more than leader and ISR: %+v", m)
	case len(m.ISR) == 0:
		return fmt.Errorf("empty ISR")
	case m.Leader >= 0 && !slices.Contains(m.ISR, m.Leader):
		return fmt.Errorf("leader %d outside the ISR %v", m.Leader, m.ISR)
	case m.Leader >= 0 && !slices.Contains(m.Replicas, m.Leader):
		return fmt.Errorf("leader %d not a replica", m.Leader)
	case d.Unclean && !uncleanAllowed:
		return fmt.Errorf("unclean election without permission")
	case d.Unclean && (!slices.Equal(m.ISR, []int32{m.Leader}) || slices.ContainsFunc(before.ISR, live.alive)):
		return fmt.Errorf("unclean election to %d with ISR %v while old ISR %v had live members", m.Leader, m.ISR, before.ISR)
	case !d.Unclean && m.Leader >= 0 && !slices.Contains(before.ISR, m.Leader):
		return fmt.Errorf("clean election of %d outside the old ISR %v", m.Leader, before.ISR)
	case !d.Unclean && slices.ContainsFunc(m.ISR, func(id int32) bool { return !slices.Contains(before.ISR, id) }):
		return fmt.Errorf("ISR grew from %v to %v", before.ISR, m.ISR)
	case m.Leader != before.Leader && m.LeaderEpoch != before.LeaderEpoch+1:
		return fmt.Errorf("leader changed %d -> %d but epoch %d -> %d", before.Leader, m.Leader, before.LeaderEpoch, m.LeaderEpoch)
	case m.Leader == before.Leader && m.LeaderEpoch != before.LeaderEpoch && !(bumpAllowed && m.LeaderEpoch == before.LeaderEpoch+1):
		return fmt.Errorf("leader kept but epoch %d -> %d", before.LeaderEpoch, m.LeaderEpoch)
	case m.Leader >= 0 && m.Leader != before.Leader && !live.alive(m.Leader):
		return fmt.Errorf("elected dead broker %d", m.Leader)
	}
	return nil
}

// Elections over random partitions and live sets never empty an ISR,
// never elect outside it unless unclean election is allowed and needed,
// never grow it, move the leader epoch exactly when the leader changes,
// report "no change" exactly when nothing changed, and ElectLeader's result
// is a fixed point.
func TestElectionProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(77, 78))
	for run := range 20000 {
		m := randomPartition(rng)
		lv := randomLive(rng)
		unclean := rng.IntN(2) == 0
		id := int32(1 + rng.IntN(6))
		fail := func(what string, d Decision, err error) {
			t.Fatalf("run %d %s: %v\nbefore %+v\nlive %v\nafter %v", run, what, err, m, lv, d)
		}

		d := ElectLeader(m, lv, unclean)
		if err := checkElection(m, d, lv, unclean, false); err != nil {
			fail("ElectLeader", d, err)
		}
		if again := ElectLeader(d.Meta, lv, unclean); again.Changed {
			fail("ElectLeader twice", again, fmt.Errorf("not a fixed point"))
		}
		// Dead brokers stay in the ISR only when no member is alive.
		if slices.ContainsFunc(d.Meta.ISR, lv.alive) && slices.ContainsFunc(d.Meta.ISR, func(x int32) bool { return !lv.alive(x) }) {
			fail("ElectLeader", d, fmt.Errorf("dead member kept beside live ones"))
		}

		g := BrokerGone(m, id, lv, unclean)
		if err := checkElection(m, g, lv.Without(id), unclean, false); err != nil {
			fail(fmt.Sprintf("BrokerGone(%d)", id), g, err)
		}
		if g.Meta.Leader == id {
			fail(fmt.Sprintf("BrokerGone(%d)", id), g, fmt.Errorf("gone broker leads"))
		}

		r := BrokerRejoined(m, id, lv, unclean)
		if err := checkElection(m, r, lv, unclean, m.Leader == id); err != nil {
			fail(fmt.Sprintf("BrokerRejoined(%d)", id), r, err)
		}
		if slices.Contains(r.Meta.ISR, id) && slices.ContainsFunc(r.Meta.ISR, func(x int32) bool { return x != id && lv.alive(x) }) {
			fail(fmt.Sprintf("BrokerRejoined(%d)", id), r, fmt.Errorf("rejoined broker kept in the ISR beside live members"))
		}
		if m.Leader == id && r.Meta.Leader == id && r.Meta.LeaderEpoch == m.LeaderEpoch {
			fail(fmt.Sprintf("BrokerRejoined(%d)", id), r, fmt.Errorf("rejoined leader resumed its old epoch"))
		}

		c := ControlledShutdown(m, id, lv)
		if err := checkElection(m, c, lv, false, false); err != nil {
			fail(fmt.Sprintf("ControlledShutdown(%d)", id), c, err)
		}
		if c.Meta.Leader == id && slices.ContainsFunc(m.ISR, func(x int32) bool { return x != id && lv.usable(x) }) {
			fail(fmt.Sprintf("ControlledShutdown(%d)", id), c, fmt.Errorf("kept leading with another usable ISR member"))
		}
		if c.Changed && c.Meta.Leader != id && slices.Contains(c.Meta.ISR, id) {
			fail(fmt.Sprintf("ControlledShutdown(%d)", id), c, fmt.Errorf("left in the ISR"))
		}

		p, _ := PreferredLeader(m, lv)
		if err := checkElection(m, p, lv, false, false); err != nil {
			fail("PreferredLeader", p, err)
		}
		if p.Changed && p.Meta.Leader != m.Replicas[0] {
			fail("PreferredLeader", p, fmt.Errorf("elected a non-preferred replica"))
		}

		prev := []coord.BrokerInfo{}
		for id := int32(1); id <= 6; id++ {
			if rng.IntN(4) > 0 {
				prev = append(prev, coord.BrokerInfo{NodeID: id, Epoch: int64(rng.IntN(2) + 2)})
			}
		}
		next := make([]coord.BrokerInfo, 0, len(lv))
		for _, b := range lv {
			next = append(next, b)
		}
		rc := Reconcile(m, lv, ChangedBrokers(prev, next), unclean)
		if err := checkElection(m, rc, lv, unclean, true); err != nil {
			fail("Reconcile", rc, err)
		}
		if again := ElectLeader(rc.Meta, lv, unclean); again.Changed {
			fail("ElectLeader after Reconcile", again, fmt.Errorf("not settled"))
		}
	}
}
