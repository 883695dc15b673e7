package group

import (
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/clock"
)

// Leadership: this broker coordinates the groups of exactly the
// __consumer_offsets partitions it leads (issue 8, "Groups in a cluster").
// Kafka's GroupCoordinator.onElection / onResignation: on election the
// partition's groups are loaded in the background while requests for them
// get COORDINATOR_LOAD_IN_PROGRESS; on resignation they are dropped, parked
// requests answered NOT_COORDINATOR, and later requests get NOT_COORDINATOR
// until the client finds the new coordinator. On a single node the broker
// elects this broker for every partition at start.

// ownedPartition is one partition this broker coordinates. A replaced or
// dropped ownedPartition is stale: a load still running for it throws its
// result away (current).
type ownedPartition struct {
	index int32
	epoch int32
	log   Log
	// loading is guarded by Coordinator.mu.
	loading bool
	// completions are transaction markers written while loading, applied
	// once the load is installed; guarded by Coordinator.mu.
	completions []txnCompletion
}

// Elected makes this broker the coordinator of partition p's groups at the
// given leader epoch and loads them in the background. An election at an
// epoch not newer than one already seen (by Elected or Resigned) is a repeat
// or stale and changes nothing; a newer epoch for a partition already owned
// reloads it, since another leader may have written in between (Kafka's
// coordinator epoch check).
func (c *Coordinator) Elected(p, leaderEpoch int32) {
	log := c.host.OffsetsLog(p)
	if log == nil {
		c.log.Warn("elected group coordinator for a partition this broker does not lead", "partition", p, "epoch", leaderEpoch)
		return
	}
	op := &ownedPartition{index: p, epoch: leaderEpoch, log: log, loading: true}
	// A partition with nothing in it has nothing to replay: its groups
	// answer at once (a freshly created __consumer_offsets).
	empty := log.EndOffset() <= log.StartOffset()
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	if last, seen := c.mu.epochs[p]; seen && leaderEpoch <= last {
		c.mu.Unlock()
		return
	}
	c.mu.epochs[p] = leaderEpoch
	dropped := c.dropLocked(p)
	c.mu.partitions[p] = op
	if empty {
		op.loading = false
	} else {
		c.mu.loadQueue = append(c.mu.loadQueue, op)
		c.startLoaderLocked()
	}
	c.mu.Unlock()
	unloadGroups(dropped)
}

// Resigned ends this broker's coordination of partition p's groups: they
// are unloaded (timers stopped, parked JoinGroup/SyncGroup answered
// NOT_COORDINATOR, nothing parked afterwards) and a load in progress is
// abandoned. leaderEpoch is the epoch at which this broker stopped leading;
// an older one than already seen is ignored.
func (c *Coordinator) Resigned(p, leaderEpoch int32) {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return
	}
	if last, seen := c.mu.epochs[p]; seen && leaderEpoch < last {
		c.mu.Unlock()
		return
	}
	c.mu.epochs[p] = leaderEpoch
	dropped := c.dropLocked(p)
	c.mu.Unlock()
	unloadGroups(dropped)
}

// dropLocked forgets partition p and removes its groups from the map,
// returning them for unloadGroups (which needs their locks, so runs after
// Coordinator.mu is released).
func (c *Coordinator) dropLocked(p int32) []*group {
	if c.mu.partitions[p] == nil {
		return nil
	}
	delete(c.mu.partitions, p)
	var out []*group
	for id, g := range c.mu.groups {
		if g.owner.index == p {
			out = append(out, g)
			delete(c.mu.groups, id)
		}
	}
	return out
}

// current reports whether op is still the partition's owner (a load for a
// resigned or re-elected partition stops and installs nothing).
func (c *Coordinator) current(op *ownedPartition) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.mu.closed && c.mu.partitions[op.index] == op
}

func unloadGroups(groups []*group) {
	for _, g := range groups {
		g.mu.Lock()
		g.unload()
		g.mu.Unlock()
	}
}

// unload is Kafka's onGroupUnloaded: the group goes Dead, its timers stop,
// and members parked in JoinGroup or SyncGroup are told NOT_COORDINATOR so
// they find the new coordinator. Its state stays in the log for whoever
// loads the partition next.
func (g *group) unload() {
	if g.mu.state == groupDead {
		return
	}
	g.stopTimers()
	g.setState(groupDead)
	for _, m := range g.mu.members {
		m.failParked(kerr.NotCoordinator)
	}
	g.mu.pending = map[string]clock.Timer{}
}
