package placement

import (
	"fmt"
	"slices"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Live is the set of registered brokers as the controller sees it, by node
// id (coord.Brokers or Event.Brokers).
type Live map[int32]coord.BrokerInfo

// LiveOf indexes a live broker list.
func LiveOf(brokers []coord.BrokerInfo) Live {
	l := make(Live, len(brokers))
	for _, b := range brokers {
		l[b.NodeID] = b
	}
	return l
}

func (l Live) alive(id int32) bool {
	_, ok := l[id]
	return ok
}

// usable: may lead (Kafka's isAcceptableLeader: unfenced and not in
// controlled shutdown).
func (l Live) usable(id int32) bool {
	b, ok := l[id]
	return ok && !b.ShuttingDown
}

// Without is l minus broker id.
func (l Live) Without(id int32) Live {
	c := make(Live, len(l))
	for k, v := range l {
		if k != id {
			c[k] = v
		}
	}
	return c
}

// Decision is the outcome of an election: the partition state to write with
// coord.UpdatePartition(..., coord.AsController) when Changed. Meta keeps
// the PartitionEpoch it was based on (the check-and-set; coord stores +1);
// its LeaderEpoch is one higher than before whenever the leader changes,
// to -1 and back included, which fences the old leader's writes.
type Decision struct {
	Meta    coord.PartitionMeta
	Changed bool
	// Unclean: the leader was elected from outside the ISR (only when
	// unclean.leader.election.enable allows it); acknowledged writes the
	// old ISR had may be lost. Log it.
	Unclean bool
}

func (d Decision) String() string {
	if !d.Changed {
		return "no change"
	}
	u := ""
	if d.Unclean {
		u = " (unclean)"
	}
	return fmt.Sprintf("leader %d epoch %d isr %v%s", d.Meta.Leader, d.Meta.LeaderEpoch, d.Meta.ISR, u)
}

// electOpts are the variations of the one election rule.
type electOpts struct {
	unclean bool
	// drop leaves the ISR unless it is its last live member (-1: none).
	drop int32
	// bump forces a new leader epoch even if the leader stays the same.
	bump bool
}

// elect is the election the variants share, after Kafka's
// PartitionChangeBuilder:
//
//   - the new ISR is the old one without dead brokers (and opts.drop), but
//     never empty: if no member is left it keeps the live ones, or if none
//     is live stays as it was (KIP-841: the last members stay and the
//     partition goes offline with leader -1; whichever of them comes back
//     first leads again without data loss — each has everything below the
//     high watermark, which waited for all of them);
//   - the current leader stays if it is still in the ISR and usable: moving
//     a healthy leader is PreferredLeader's job (Kafka's electAnyLeader);
//   - otherwise the first replica, in replica order, that is in the ISR and
//     usable (live, not shutting down) leads;
//   - failing that, a live ISR member that is shutting down — the current
//     leader first — leads rather than the partition going offline (Kafka
//     would take it offline; it is available until that broker is gone);
//   - failing that, if unclean election is allowed and no ISR member is
//     alive at all, the first usable replica leads and the ISR becomes just
//     it (Kafka's unclean election);
//   - failing that, the leader is -1 (offline).
func elect(m coord.PartitionMeta, live Live, o electOpts) Decision {
	if len(m.Replicas) == 0 {
		return Decision{Meta: m.Clone()}
	}
	aliveISR := slices.DeleteFunc(slices.Clone(m.ISR), func(id int32) bool { return !live.alive(id) })
	isr := slices.DeleteFunc(slices.Clone(aliveISR), func(id int32) bool { return id == o.drop })
	if len(isr) == 0 {
		isr = aliveISR
	}
	if len(isr) == 0 {
		isr = slices.Clone(m.ISR)
	}
	inISRAlive := func(id int32) bool { return slices.Contains(isr, id) && live.alive(id) }
	clean := func(id int32) bool { return inISRAlive(id) && live.usable(id) }

	leader, unclean := int32(-1), false
	switch {
	case m.Leader >= 0 && clean(m.Leader):
		leader = m.Leader
	case firstOf(m.Replicas, clean) >= 0:
		leader = firstOf(m.Replicas, clean)
	case m.Leader >= 0 && inISRAlive(m.Leader):
		leader = m.Leader
	case firstOf(m.Replicas, inISRAlive) >= 0:
		leader = firstOf(m.Replicas, inISRAlive)
	case o.unclean && len(aliveISR) == 0:
		leader = firstOf(m.Replicas, live.usable)
		if leader >= 0 {
			isr, unclean = []int32{leader}, true
		}
	}

	next := m.Clone()
	next.Leader = leader
	next.ISR = isr
	if leader != m.Leader || o.bump {
		next.LeaderEpoch = m.LeaderEpoch + 1
	}
	if next.Leader == m.Leader && next.LeaderEpoch == m.LeaderEpoch && slices.Equal(next.ISR, m.ISR) {
		return Decision{Meta: m.Clone()}
	}
	return Decision{Meta: next, Changed: true, Unclean: unclean}
}

func firstOf(ids []int32, ok func(int32) bool) int32 {
	for _, id := range ids {
		if ok(id) {
			return id
		}
	}
	return -1
}

// ElectLeader brings a partition in line with the live broker set: dead
// brokers leave its ISR (never emptying it), and if its leader is gone or
// shutting down the first usable ISR replica takes over; an offline
// partition gets a leader as soon as an ISR member is back, or — with
// uncleanAllowed (unclean.leader.election.enable) and no ISR member alive —
// any usable replica. See elect for the exact order of preference.
func ElectLeader(m coord.PartitionMeta, live Live, uncleanAllowed bool) Decision {
	return elect(m, live, electOpts{unclean: uncleanAllowed, drop: -1})
}

// BrokerGone handles a broker whose registration lapsed (Kafka: fenced
// after broker.session.timeout.ms): ElectLeader with it counted dead.
func BrokerGone(m coord.PartitionMeta, id int32, live Live, uncleanAllowed bool) Decision {
	return elect(m, live.Without(id), electOpts{unclean: uncleanAllowed, drop: -1})
}

// ControlledShutdown moves a partition off broker id, which asked to shut
// down (coord.BrokerInfo.ShuttingDown): if it leads, the first other usable
// ISR replica (in replica order) takes over at a new leader epoch, and it
// leaves the ISR when other members remain, so neither acks=all nor the
// high watermark wait for it (Kafka's controlled shutdown). When no other
// usable ISR member can take over it keeps leading, and stays in the ISR,
// until it is gone (BrokerGone): the partition stays available meanwhile,
// where KRaft would take it offline at once.
func ControlledShutdown(m coord.PartitionMeta, id int32, live Live) Decision {
	if m.Leader != id && !slices.Contains(m.ISR, id) {
		return Decision{Meta: m.Clone()}
	}
	next := m.Clone()
	if m.Leader == id {
		to := firstOf(m.Replicas, func(r int32) bool { return r != id && slices.Contains(m.ISR, r) && live.usable(r) })
		if to < 0 {
			return Decision{Meta: m.Clone()}
		}
		next.Leader = to
		next.LeaderEpoch++
	}
	if len(next.ISR) > 1 {
		next.ISR = slices.DeleteFunc(next.ISR, func(r int32) bool { return r == id })
	}
	if next.Leader == m.Leader && slices.Equal(next.ISR, m.ISR) {
		return Decision{Meta: m.Clone()}
	}
	return Decision{Meta: next, Changed: true}
}

// BrokerRejoined handles a broker that registered again with a new broker
// epoch or incarnation (a restart, perhaps with a wiped or truncated disk):
// it is taken out of every ISR it is still listed in, so it has to catch up
// and be re-admitted by the leader's KIP-903 check before it counts again.
// Where it is the last live member it stays (the ISR is never emptied) and,
// if it led or the partition was offline, it leads at a new leader epoch:
// it cannot resume the tenure its previous incarnation had. A rejoined
// leader with other live ISR members hands leadership to the first of them
// (a usable one if any).
func BrokerRejoined(m coord.PartitionMeta, id int32, live Live, uncleanAllowed bool) Decision {
	return elect(m, live, electOpts{unclean: uncleanAllowed, drop: id, bump: m.Leader == id})
}

// PreferredLeader is the preferred-replica election (kafka-leader-election
// --election-type PREFERRED, ElectLeaders v0+, auto.leader.rebalance): the
// first replica takes over if it is in the ISR and usable. The error, when
// nothing changes, is what ElectLeaders answers for the partition:
// ELECTION_NOT_NEEDED when it already leads, PREFERRED_LEADER_NOT_AVAILABLE
// when it cannot.
func PreferredLeader(m coord.PartitionMeta, live Live) (Decision, error) {
	if len(m.Replicas) == 0 {
		return Decision{Meta: m.Clone()}, fmt.Errorf("placement: partition %d has no replicas: %w", m.Partition, kerr.PreferredLeaderNotAvailable)
	}
	pref := m.Replicas[0]
	switch {
	case m.Leader == pref:
		return Decision{Meta: m.Clone()}, fmt.Errorf("placement: preferred replica %d already leads partition %d: %w", pref, m.Partition, kerr.ElectionNotNeeded)
	case !slices.Contains(m.ISR, pref) || !live.usable(pref):
		return Decision{Meta: m.Clone()}, fmt.Errorf("placement: preferred replica %d of partition %d is not a usable ISR member: %w", pref, m.Partition, kerr.PreferredLeaderNotAvailable)
	}
	next := m.Clone()
	next.Leader = pref
	next.LeaderEpoch++
	return Decision{Meta: next, Changed: true}, nil
}

// BrokerChanges is how the live broker set moved between two snapshots.
type BrokerChanges struct {
	// Gone: registered before, not now.
	Gone []int32
	// Rejoined: registered now with another broker epoch or incarnation
	// than before, or newly registered (a broker that was gone is back).
	Rejoined []int32
	// ShuttingDown: now in controlled shutdown, and was not before.
	ShuttingDown []int32
}

// ChangedBrokers compares two live broker lists (successive BrokersChanged
// events), each result sorted by id.
func ChangedBrokers(prev, next []coord.BrokerInfo) BrokerChanges {
	p, n := LiveOf(prev), LiveOf(next)
	var c BrokerChanges
	for id := range p {
		if !n.alive(id) {
			c.Gone = append(c.Gone, id)
		}
	}
	for id, b := range n {
		old, was := p[id]
		if !was || old.Epoch != b.Epoch || old.Incarnation != b.Incarnation {
			c.Rejoined = append(c.Rejoined, id)
		}
		if b.ShuttingDown && (!was || !old.ShuttingDown) {
			c.ShuttingDown = append(c.ShuttingDown, id)
		}
	}
	slices.Sort(c.Gone)
	slices.Sort(c.Rejoined)
	slices.Sort(c.ShuttingDown)
	return c
}

// Reconcile applies everything a BrokersChanged event means for one
// partition — BrokerGone, BrokerRejoined and ControlledShutdown for each
// broker concerned, then ElectLeader — as one decision, so the controller
// makes one write per partition at most. The leader epoch moves by one at
// most.
func Reconcile(m coord.PartitionMeta, live Live, c BrokerChanges, uncleanAllowed bool) Decision {
	cur := m.Clone()
	bumped, unclean := false, false
	step := func(d Decision) {
		bumped = bumped || d.Meta.LeaderEpoch != cur.LeaderEpoch
		unclean = unclean || d.Unclean
		cur = d.Meta
	}
	for _, id := range c.Gone {
		step(BrokerGone(cur, id, live, uncleanAllowed))
	}
	for _, id := range c.Rejoined {
		step(BrokerRejoined(cur, id, live, uncleanAllowed))
	}
	for _, id := range c.ShuttingDown {
		step(ControlledShutdown(cur, id, live))
	}
	step(ElectLeader(cur, live, uncleanAllowed))
	cur.LeaderEpoch = m.LeaderEpoch
	if bumped {
		cur.LeaderEpoch++
	}
	if cur.Leader == m.Leader && cur.LeaderEpoch == m.LeaderEpoch && slices.Equal(cur.ISR, m.ISR) {
		return Decision{Meta: m.Clone()}
	}
	return Decision{Meta: cur, Changed: true, Unclean: unclean}
}
