package broker

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/partition"
)

// The group coordinator (Kafka's classic GroupCoordinator). Files:
//
//	group_coordinator.go  this file: the group map, the offsets topic, appends, lookup
//	group_state.go        one group's classic rebalance state machine (join, sync, heartbeat, leave)
//	group_offsets.go      committed offsets: commit, fetch, delete, retention expiry
//	group_metadata.go     a group's membership as a GroupMetadataValue, written and restored
//	group_load.go         replaying __consumer_offsets after a restart
//	group_records.go      the __consumer_offsets record formats (kmsg types)
//
// State owners and lock order: groupCoordinator.mu guards the group map and the
// set of partitions still loading; each group's mu guards everything in that
// group. A group's mu may be held while taking groupCoordinator.mu and then a
// partition's appendMu (group.mu → groupCoordinator.mu → partition.appendMu),
// never the other way, so a group's records are appended in the order its
// state changed. (The append also takes topicRegistry.mu for reading before
// appendMu, as partition.go's lock order says.) JoinGroup and SyncGroup
// handlers wait for their answer on a channel with no lock held.
//
// On a single node this broker coordinates every group; which
// __consumer_offsets partition holds a group's records is Kafka's choice,
// abs(groupId.hashCode()) % partitions, so a Kafka tool reading the topic
// finds them where it expects.

const offsetsTopicName = "__consumer_offsets"

// offsetMetadataMaxBytes is Kafka's offset.metadata.max.bytes default; longer
// commit metadata gets OFFSET_METADATA_TOO_LARGE.
const offsetMetadataMaxBytes = 4096

type groupCoordinator struct {
	b *Broker

	minSession, maxSession time.Duration
	initialDelay           time.Duration
	retention              time.Duration

	mu struct {
		sync.Mutex
		groups map[string]*group
		// loading holds __consumer_offsets partitions whose records are
		// being replayed; their groups answer COORDINATOR_LOAD_IN_PROGRESS.
		loading map[int32]bool
		closed  bool
	}
	createMu sync.Mutex // serialises creating __consumer_offsets
}

func newGroupCoordinator(b *Broker) *groupCoordinator {
	s := b.settings
	gc := &groupCoordinator{
		b:            b,
		minSession:   time.Duration(s.groupMinSessionMs) * time.Millisecond,
		maxSession:   time.Duration(s.groupMaxSessionMs) * time.Millisecond,
		initialDelay: time.Duration(s.groupInitialDelayMs) * time.Millisecond,
		retention:    time.Duration(s.offsetsRetentionMin) * time.Minute,
	}
	gc.mu.groups = map[string]*group{}
	gc.mu.loading = map[int32]bool{}
	return gc
}

// start marks every existing __consumer_offsets partition as loading and
// replays them in the background (group_load.go), then runs the offset
// expiry loop until the broker closes.
func (gc *groupCoordinator) start() {
	t := gc.b.topics.get(offsetsTopicName)
	if t != nil {
		gc.mu.Lock()
		for i := int32(0); i < t.count(); i++ {
			gc.mu.loading[i] = true
		}
		gc.mu.Unlock()
	}
	gc.b.goBackground(func() {
		if t != nil {
			gc.loadAll(t)
		}
		gc.expiryLoop()
	})
}

// close stops every group's timers; waiting JoinGroup/SyncGroup handlers end
// with the broker's context.
func (gc *groupCoordinator) close() {
	gc.mu.Lock()
	gc.mu.closed = true
	groups := make([]*group, 0, len(gc.mu.groups))
	for _, g := range gc.mu.groups {
		groups = append(groups, g)
	}
	gc.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		g.stopTimers()
		g.mu.Unlock()
	}
}

// javaStringHashCode is Java's String.hashCode over UTF-16 code units.
func javaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return h
}

// groupPartition is Kafka's partitionFor: Utils.abs(groupId.hashCode) % n,
// where Utils.abs maps Integer.MIN_VALUE to 0.
func groupPartition(groupID string, n int32) int32 {
	h := javaStringHashCode(groupID)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % n
}

// offsetsTopic returns __consumer_offsets, creating it on first need as Kafka
// does (compacted, offsets.topic.num.partitions partitions). The partition
// count of an existing topic wins over the setting, so records are always
// found where they were written.
func (gc *groupCoordinator) offsetsTopic() (*topic, *kerr.Error) {
	if t := gc.b.topics.get(offsetsTopicName); t != nil {
		return t, nil
	}
	gc.createMu.Lock()
	defer gc.createMu.Unlock()
	if t := gc.b.topics.get(offsetsTopicName); t != nil {
		return t, nil
	}
	configs := map[string]string{
		"cleanup.policy": "compact",
		// Kafka's offsets.topic.segment.bytes default: small segments let
		// the cleaner compact committed offsets early.
		"segment.bytes": "104857600",
	}
	t, err := gc.b.topics.create(gc.b.ctx, offsetsTopicName, gc.b.settings.offsetsTopicParts, 1, configs)
	if errors.Is(err, errTopicExists) {
		t = gc.b.topics.get(offsetsTopicName)
	} else if err != nil {
		gc.b.log.Error("cannot create __consumer_offsets", "err", err)
		return nil, kerr.CoordinatorNotAvailable
	}
	if t == nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	return t, nil
}

// lookup finds a group, creating an Empty one when create is set. Errors are
// what Kafka answers before touching a group: INVALID_GROUP_ID,
// COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR (closing),
// COORDINATOR_NOT_AVAILABLE. A nil group with no error means "no such group".
func (gc *groupCoordinator) lookup(groupID string, create bool) (*group, *kerr.Error) {
	t, kerrv := gc.offsetsTopic()
	if kerrv != nil {
		return nil, kerrv
	}
	part := groupPartition(groupID, t.count())
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.mu.closed {
		return nil, kerr.NotCoordinator
	}
	if gc.mu.loading[part] {
		return nil, kerr.CoordinatorLoadInProgress
	}
	g := gc.mu.groups[groupID]
	if g == nil && create {
		g = newGroup(gc, groupID, part)
		gc.mu.groups[groupID] = g
	}
	return g, nil
}

// withGroup runs fn with the group locked. A group found Dead (deleted or
// expired between lookup and lock) is looked up again, so callers never
// act on a removed group when create is set.
func (gc *groupCoordinator) withGroup(groupID string, create bool, fn func(g *group)) *kerr.Error {
	for {
		g, kerrv := gc.lookup(groupID, create)
		if kerrv != nil {
			return kerrv
		}
		if g == nil {
			fn(nil)
			return nil
		}
		g.mu.Lock()
		if g.state == groupDead && create {
			g.mu.Unlock()
			continue
		}
		fn(g)
		g.mu.Unlock()
		return nil
	}
}

// removeGroup drops a Dead group from the map (the caller holds g.mu).
func (gc *groupCoordinator) removeGroup(g *group) {
	gc.mu.Lock()
	if gc.mu.groups[g.id] == g {
		delete(gc.mu.groups, g.id)
	}
	gc.mu.Unlock()
}

// allGroups returns the loaded groups sorted by id.
func (gc *groupCoordinator) allGroups() []*group {
	gc.mu.Lock()
	out := make([]*group, 0, len(gc.mu.groups))
	for _, g := range gc.mu.groups {
		out = append(out, g)
	}
	gc.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (gc *groupCoordinator) anyLoading() bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return len(gc.mu.loading) > 0
}

var errCoordinatorClosed = errors.New("group coordinator is closing")

// appendGroupRecords writes records to a __consumer_offsets partition through
// its log, as producePartition does for clients (clients cannot produce to
// the internal topic).
func (gc *groupCoordinator) appendGroupRecords(part int32, recs []groupRecord) error {
	if len(recs) == 0 {
		return nil
	}
	_, p := gc.b.topics.partition(offsetsTopicName, part)
	if p == nil {
		return errCoordinatorClosed
	}
	batch := buildGroupBatch(recs, gc.b.now().UnixMilli())
	if _, err := p.AppendInternal(gc.b.ctx, batch); err != nil {
		if errors.Is(err, partition.ErrClosed) {
			return errCoordinatorClosed
		}
		return err
	}
	return nil
}

// appendErr maps a failed append to the error code Kafka gives for a failed
// write to the offsets topic (GroupMetadataManager: a closed or lost
// partition means NOT_COORDINATOR, other storage failures
// COORDINATOR_NOT_AVAILABLE, so clients retry).
func appendErr(err error) *kerr.Error {
	if errors.Is(err, errCoordinatorClosed) {
		return kerr.NotCoordinator
	}
	return kerr.CoordinatorNotAvailable
}
