package broker

import (
	"time"

	"github.com/strata-broker/strata/broker/partition"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Loading: after a restart each __consumer_offsets partition is replayed from
// its log start to its end before the groups it holds answer requests;
// meanwhile they get COORDINATOR_LOAD_IN_PROGRESS and clients retry (Kafka's
// GroupMetadataManager.loadGroupsAndOffsets). The newest record per key wins,
// tombstones delete, so the result is the same before and after compaction.

// groupLoadHook, when set by a test, runs before each partition is replayed.
var groupLoadHook func(partition int32)

// loadedGroup is one group's state as replayed from the log.
type loadedGroup struct {
	offsets  map[string]map[int32]committedOffset
	metadata *kmsg.GroupMetadataValue // nil: none, or tombstoned
}

// groupReplay accumulates records in log order.
type groupReplay struct {
	groups map[string]*loadedGroup
	bad    int // records that did not decode, skipped
}

func newGroupReplay() *groupReplay { return &groupReplay{groups: map[string]*loadedGroup{}} }

func (r *groupReplay) apply(key, value []byte) {
	e, ok, err := decodeGroupRecord(key, value)
	if err != nil {
		r.bad++
		return
	}
	if !ok {
		return
	}
	lg := r.groups[e.group]
	if lg == nil {
		lg = &loadedGroup{offsets: map[string]map[int32]committedOffset{}}
		r.groups[e.group] = lg
	}
	switch {
	case e.isOffset && e.offset == nil:
		if ps := lg.offsets[e.topic]; ps != nil {
			delete(ps, e.partition)
			if len(ps) == 0 {
				delete(lg.offsets, e.topic)
			}
		}
	case e.isOffset:
		ps := lg.offsets[e.topic]
		if ps == nil {
			ps = map[int32]committedOffset{}
			lg.offsets[e.topic] = ps
		}
		ps[e.partition] = *e.offset
	case e.isMetadata:
		lg.metadata = e.metadata
	}
}

// replay feeds a chunk of log bytes through apply and returns the offset
// after its last whole batch.
func (r *groupReplay) replay(b []byte) (int64, error) {
	return walkGroupBatches(b, r.apply)
}

func (gc *groupCoordinator) loadAll(t *topic) {
	for i, p := range t.partitions {
		if gc.b.ctx.Err() != nil {
			return
		}
		if groupLoadHook != nil {
			groupLoadHook(int32(i))
		}
		start := time.Now()
		r := gc.replayPartition(p)
		gc.install(int32(i), r)
		if len(r.groups) > 0 || r.bad > 0 {
			gc.b.log.Info("loaded groups", "partition", i, "groups", len(r.groups), "skipped_records", r.bad, "took", time.Since(start))
		}
	}
}

// replayPartition reads one partition's log up to the end it has now
// (nothing else appends while the partition is loading).
func (gc *groupCoordinator) replayPartition(p *partition.Partition) *groupReplay {
	r := newGroupReplay()
	end := p.HighWatermark()
	off := p.LocalLogStartOffset()
	for off < end && gc.b.ctx.Err() == nil {
		b, err := p.ReadCommitted(off, 4<<20)
		if err != nil {
			gc.b.log.Error("cannot read __consumer_offsets", "partition", p.Index, "offset", off, "err", err)
			break
		}
		if len(b) == 0 {
			break
		}
		next, err := r.replay(b)
		if err != nil {
			gc.b.log.Warn("skipping undecodable __consumer_offsets records", "partition", p.Index, "offset", off, "err", err)
		}
		if next <= off {
			break
		}
		off = next
	}
	return r
}

// install turns replayed state into live groups and ends the partition's
// loading state.
func (gc *groupCoordinator) install(partition int32, r *groupReplay) {
	now := gc.b.now().UnixMilli()
	var groups []*group
	for id, lg := range r.groups {
		if lg.metadata == nil && len(lg.offsets) == 0 {
			continue
		}
		g := newGroup(gc, id, partition)
		g.mu.Lock()
		if lg.metadata != nil {
			g.restoreMetadata(lg.metadata)
			if g.stateTime < 0 {
				g.stateTime = now
			}
		}
		g.offsets = lg.offsets
		g.mu.Unlock()
		groups = append(groups, g)
	}
	gc.mu.Lock()
	for _, g := range groups {
		gc.mu.groups[g.id] = g
	}
	delete(gc.mu.loading, partition)
	gc.mu.Unlock()
}
