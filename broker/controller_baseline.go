package broker

import (
	"slices"
	"time"

	"github.com/strata-broker/strata/coord"
)

// What a new controller term compares the live brokers with. Broker changes
// are computed between successive reconcile passes of one term; the first
// pass needs a baseline too, or a broker that re-registered while no
// controller was serving would never be seen as rejoined. That gap is real:
// a controller that dies leaves its lock held by its session for up to
// broker.session.timeout.ms, and a broker restarted in that gap — the dead
// controller itself, say, with a wiped disk — re-registers unseen. Left in
// its ISRs it could be elected with a log it no longer has (KIP-903's
// case); the e2e test TestClusterWipedFollower lost acknowledged records
// that way.
//
// So every broker, controller or not, keeps the live sets it observed over
// the last rejoinWindow, and a new term starts from each broker's
// registration as it was then, counting only restarts (a new incarnation)
// as rejoins. Changes the previous controller did apply are applied again:
// a rejoined broker leaves an ISR it had already re-joined and catches up
// again, which costs a moment, not data.

// seenBrokers is a live broker set and when this broker saw it.
type seenBrokers struct {
	at      time.Time
	brokers []coord.BrokerInfo
}

// observeBrokers records a live set this broker saw (every BrokersChanged
// event, whether or not it is the controller).
func (c *controller) observeBrokers(brokers []coord.BrokerInfo, now time.Time) {
	c.seen.Lock()
	defer c.seen.Unlock()
	c.seen.lists = pruneSeen(append(c.seen.lists, seenBrokers{at: now, brokers: brokers}), now.Add(-c.rejoinWindow()))
}

// rejoinWindow is how far back a new term looks: twice
// broker.session.timeout.ms, the longest a dead controller's lock can hide
// a re-registration plus as long again for the next holder to start.
func (c *controller) rejoinWindow() time.Duration {
	return 2 * time.Duration(c.b.settings.sessionTimeoutMs) * time.Millisecond
}

// baseline is, for each broker seen, the registration it had rejoinWindow
// before now, or the first one seen since (a broker — this one included —
// that started since); nil when nothing was seen.
func (c *controller) baseline(now time.Time) []coord.BrokerInfo {
	c.seen.Lock()
	defer c.seen.Unlock()
	c.seen.lists = pruneSeen(c.seen.lists, now.Add(-c.rejoinWindow()))
	return firstSeen(c.seen.lists)
}

// firstSeen is each broker's first registration in lists (oldest first),
// sorted by node id; nil when lists is empty.
func firstSeen(lists []seenBrokers) []coord.BrokerInfo {
	if len(lists) == 0 {
		return nil
	}
	out := []coord.BrokerInfo{}
	for _, l := range lists {
		for _, b := range l.brokers {
			if !slices.ContainsFunc(out, func(x coord.BrokerInfo) bool { return x.NodeID == b.NodeID }) {
				out = append(out, b)
			}
		}
	}
	slices.SortFunc(out, func(a, b coord.BrokerInfo) int { return int(a.NodeID - b.NodeID) })
	return out
}

// termBaseline is what a new term's first pass compares the live set now
// with: the baseline, except that a broker counts as rejoined only if it
// came back as another process (another incarnation: a restart, perhaps
// with a wiped disk). One that only re-established its session (a long
// pause, Consul unreachable for longer than the session timeout) has the
// log it had; taking it out of every ISR would collapse every ISR to one
// member after a Consul outage, when all sessions are replaced at once. A
// broker registered since the baseline is not a rejoin either. (A broker
// that was gone is out of every ISR already, but one it is the last live
// member of: elect drops dead members.)
func termBaseline(base, now []coord.BrokerInfo) []coord.BrokerInfo {
	if base == nil {
		return nil
	}
	out := make([]coord.BrokerInfo, 0, len(base)+len(now))
	for _, b := range base {
		i := slices.IndexFunc(now, func(x coord.BrokerInfo) bool { return x.NodeID == b.NodeID })
		if i >= 0 && now[i].Incarnation == b.Incarnation {
			b = now[i]
		}
		out = append(out, b)
	}
	for _, b := range now {
		if !slices.ContainsFunc(base, func(x coord.BrokerInfo) bool { return x.NodeID == b.NodeID }) {
			out = append(out, b)
		}
	}
	return out
}

// pruneSeen drops the lists seen before cutoff except the newest of them,
// which is the set as it was at cutoff.
func pruneSeen(lists []seenBrokers, cutoff time.Time) []seenBrokers {
	i := 0
	for i+1 < len(lists) && !lists[i+1].at.After(cutoff) {
		i++
	}
	return lists[i:]
}
