package broker

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/coord"
)

// partKey names one partition.
type partKey struct {
	topic string
	index int32
}

// reconcile brings every partition in line with the live broker set, the
// controller's main duty: brokers that went away leave ISRs and their
// leaderships move (only within the ISR unless unclean election is on),
// brokers that came back as a new process (restart, wiped disk: KIP-903)
// leave ISRs until they catch up, brokers in controlled shutdown hand their
// leaderships over, offline partitions get a leader as soon as an ISR member
// is back. The decisions are broker/placement's; this writes the ones that
// change something, each fenced by the controller term.
//
// Broker changes are computed between successive passes of one term; a
// partition whose write failed keeps what it still owes and gets it on the
// next pass, so a change is applied to each partition exactly once.
func (c *controller) reconcile(term coord.Term) {
	b := c.b
	brokers, err := b.coord.Brokers(b.ctx)
	if err != nil {
		return
	}
	var diff placement.BrokerChanges
	if c.prevBrokers != nil {
		diff = placement.ChangedBrokers(c.prevBrokers, brokers)
		diff.Rejoined = restarted(diff.Rejoined, c.prevBrokers, brokers)
	}
	c.prevBrokers = brokers
	live := placement.LiveOf(brokers)
	metas, err := b.coord.Topics(b.ctx)
	if err != nil {
		return
	}
	seen := map[partKey]bool{}
	for _, t := range metas {
		unclean := b.settings.uncleanElection
		if v, ok := t.Configs["unclean.leader.election.enable"]; ok {
			unclean = v == "true"
		}
		for _, pm := range t.Partitions {
			k := partKey{t.Name, pm.Partition}
			seen[k] = true
			owed := mergeChanges(c.owed[k], diff)
			d := placement.Reconcile(pm, live, owed, unclean)
			if !d.Changed {
				delete(c.owed, k)
				continue
			}
			select {
			case <-term.Done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
			stored, err := b.coord.UpdatePartition(ctx, t.Name, d.Meta, coord.AsController)
			cancel()
			switch {
			case err == nil:
				delete(c.owed, k)
				b.metrics.leaderElections.Inc()
				lvl := b.log.Info
				if d.Unclean {
					lvl = b.log.Warn
				}
				lvl("controller changed a partition", "topic", t.Name, "partition", pm.Partition, "leader", stored.Leader,
					"leader_epoch", stored.LeaderEpoch, "isr", stored.ISR, "was_leader", pm.Leader, "was_isr", pm.ISR, "unclean", d.Unclean)
			case errors.Is(err, coord.ErrNotController):
				return
			case errors.Is(err, coord.ErrConflict):
				// The state moved under this pass (a leader's ISR change):
				// decide again on the new state at once.
				c.owed[k] = owed
				b.log.Info("controller write refused; retrying", "topic", t.Name, "partition", pm.Partition, "err", err)
				b.kickController()
			default:
				// Consul unreachable, or a partition key it cannot read
				// (garbage: nothing may be built on a state no one can
				// read). Retrying at once would spin; the next periodic
				// pass tries again.
				c.owed[k] = owed
				b.log.Warn("controller write failed; retrying on the next pass", "topic", t.Name, "partition", pm.Partition, "err", err)
			}
		}
	}
	for k := range c.owed {
		if !seen[k] {
			delete(c.owed, k)
		}
	}
}

// restarted keeps, of the brokers placement counts as rejoined, those that
// came back as another process (another incarnation) or were not
// registered before. A new broker epoch alone is a replaced session: the
// process, and its log, are the ones that were in the ISRs, as in Kafka,
// where a broker that heartbeats again after being unreachable keeps its
// epoch. Taking such brokers out of every ISR, and moving their
// leaderships, would follow every Consul outage longer than the session
// timeout — when all sessions are replaced at once — with a round of
// elections, and the leaders moved away from keep taking acks=1 writes,
// lost on truncation, until they hear of it (e2e TestClusterConsulOutage).
// A broker whose session lapsed while Consul was up was already seen gone:
// out of the ISRs, its leaderships moved.
func restarted(rejoined []int32, prev, now []coord.BrokerInfo) []int32 {
	var out []int32
	for _, id := range rejoined {
		i := slices.IndexFunc(prev, func(b coord.BrokerInfo) bool { return b.NodeID == id })
		j := slices.IndexFunc(now, func(b coord.BrokerInfo) bool { return b.NodeID == id })
		if i < 0 || j < 0 || prev[i].Incarnation != now[j].Incarnation {
			out = append(out, id)
		}
	}
	return out
}

// mergeChanges is the union of two sets of broker changes.
func mergeChanges(a, b placement.BrokerChanges) placement.BrokerChanges {
	union := func(x, y []int32) []int32 {
		out := slices.Clone(x)
		for _, id := range y {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		slices.Sort(out)
		return out
	}
	return placement.BrokerChanges{Gone: union(a.Gone, b.Gone), Rejoined: union(a.Rejoined, b.Rejoined), ShuttingDown: union(a.ShuttingDown, b.ShuttingDown)}
}
