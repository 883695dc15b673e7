package group

import "github.com/twmb/franz-go/pkg/kmsg"

// Loading: when this broker is elected for a __consumer_offsets partition
// (at start, or on a leadership change) the partition is replayed from its
// log start to its end before the groups it holds answer requests;
// meanwhile they get COORDINATOR_LOAD_IN_PROGRESS and clients retry (Kafka's
// GroupMetadataManager.loadGroupsAndOffsets). The newest record per key wins,
// tombstones delete, so the result is the same before and after compaction.
// One loader goroutine replays queued partitions in turn, as Kafka's single
// group-metadata-manager scheduler thread does.

// loadedGroup is one group's state as replayed from the log.
type loadedGroup struct {
	offsets  map[string]map[int32]committedOffset
	metadata *kmsg.GroupMetadataValue // nil: none, or tombstoned
}

// groupReplay accumulates records in log order.
type groupReplay struct {
	groups map[string]*loadedGroup
	// pending are TxnOffsetCommit offsets whose marker has not been read
	// (yet): producer id → group → partition (Kafka's loader keeps the
	// same pendingOffsets map).
	pending map[int64]map[string]map[topicPartition]committedOffset
	bad     int // records that did not decode, skipped
}

func newGroupReplay() *groupReplay {
	return &groupReplay{groups: map[string]*loadedGroup{}, pending: map[int64]map[string]map[topicPartition]committedOffset{}}
}

// apply replays one non-transactional record (tests and fuzzing give no
// offset; the order of calls is the log's).
func (r *groupReplay) apply(key, value []byte) { r.applyAt(key, value, 0) }

func (r *groupReplay) loaded(id string) *loadedGroup {
	lg := r.groups[id]
	if lg == nil {
		lg = &loadedGroup{offsets: map[string]map[int32]committedOffset{}}
		r.groups[id] = lg
	}
	return lg
}

func (r *groupReplay) applyAt(key, value []byte, offset int64) {
	e, ok, err := decodeGroupRecord(key, value)
	if err != nil {
		r.bad++
		return
	}
	if !ok {
		return
	}
	if e.offset != nil {
		e.offset.logOffset = offset
	}
	lg := r.loaded(e.group)
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

// record feeds one Record through the replay (the Log.Read callback):
// offsets of transactional batches wait for their producer's marker, which
// commits them into the group's offsets (when newer than what is there) or
// drops them; everything else applies at once.
func (r *groupReplay) record(rec Record) {
	switch {
	case rec.Control:
		r.completeTxn(rec.ProducerID, rec.Commit)
	case rec.Transactional && rec.ProducerID >= 0:
		r.pendingAt(rec)
	default:
		r.applyAt(rec.Key, rec.Value, rec.Offset)
	}
}

// pendingAt keeps a transactional offset commit (or its removal by a
// tombstone) until the marker; other record kinds in a transactional batch
// are not written by a coordinator and replay as usual.
func (r *groupReplay) pendingAt(rec Record) {
	e, ok, err := decodeGroupRecord(rec.Key, rec.Value)
	if err != nil {
		r.bad++
		return
	}
	if !ok {
		return
	}
	if !e.isOffset {
		r.applyAt(rec.Key, rec.Value, rec.Offset)
		return
	}
	r.loaded(e.group) // the group exists from its first commit, as in Kafka
	byGroup := r.pending[rec.ProducerID]
	if byGroup == nil {
		byGroup = map[string]map[topicPartition]committedOffset{}
		r.pending[rec.ProducerID] = byGroup
	}
	tp := topicPartition{e.topic, e.partition}
	if e.offset == nil {
		delete(byGroup[e.group], tp)
		return
	}
	if byGroup[e.group] == nil {
		byGroup[e.group] = map[topicPartition]committedOffset{}
	}
	o := *e.offset
	o.logOffset = rec.Offset
	byGroup[e.group][tp] = o
}

// completeTxn applies producerID's marker to what it has pending.
func (r *groupReplay) completeTxn(producerID int64, commit bool) {
	byGroup := r.pending[producerID]
	delete(r.pending, producerID)
	if !commit {
		return
	}
	for id, tps := range byGroup {
		lg := r.loaded(id)
		for tp, o := range tps {
			ps := lg.offsets[tp.topic]
			if ps == nil {
				ps = map[int32]committedOffset{}
				lg.offsets[tp.topic] = ps
			}
			if cur, ok := ps[tp.partition]; !ok || cur.logOffset < o.logOffset {
				ps[tp.partition] = o
			}
		}
	}
}

// startLoaderLocked starts the loader goroutine unless it runs already.
func (c *Coordinator) startLoaderLocked() {
	if c.mu.loaderRunning || c.mu.closed {
		return
	}
	c.mu.loaderRunning = true
	c.wg.Add(1)
	go c.runLoader()
}

// runLoader replays queued partitions until the queue is empty or the
// coordinator closes.
func (c *Coordinator) runLoader() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.mu.closed || len(c.mu.loadQueue) == 0 {
			c.mu.loaderRunning = false
			c.mu.Unlock()
			return
		}
		op := c.mu.loadQueue[0]
		c.mu.loadQueue = c.mu.loadQueue[1:]
		c.mu.Unlock()
		installed := c.load(op)
		if c.loadDone != nil {
			c.loadDone(op.index, installed)
		}
	}
}

// load replays and installs one partition, unless it stopped being current.
func (c *Coordinator) load(op *ownedPartition) bool {
	if !c.current(op) {
		return false
	}
	start := c.now()
	r, ok := c.replayPartition(op)
	if !ok || !c.install(op, r) {
		return false
	}
	if len(r.groups) > 0 || r.bad > 0 {
		c.log.Info("loaded groups", "partition", op.index, "epoch", op.epoch, "groups", len(r.groups), "skipped_records", r.bad, "took", c.now().Sub(start))
	}
	return true
}

// replayPartition reads one partition's log from its start to the end it
// has now (nothing else appends to it while it is loading). ok is false if
// the partition was resigned or the coordinator closed meanwhile.
func (c *Coordinator) replayPartition(op *ownedPartition) (r *groupReplay, ok bool) {
	r = newGroupReplay()
	end := op.log.EndOffset()
	off := op.log.StartOffset()
	for off < end {
		if c.ctx.Err() != nil || !c.current(op) {
			return nil, false
		}
		next, err := op.log.Read(c.ctx, off, end, r.record)
		if err != nil {
			if next <= off {
				if c.ctx.Err() == nil {
					c.log.Error("cannot read "+OffsetsTopic, "partition", op.index, "offset", off, "err", err)
				}
				break
			}
			c.log.Warn("skipping undecodable "+OffsetsTopic+" records", "partition", op.index, "offset", off, "err", err)
		}
		if next <= off {
			break
		}
		off = next
	}
	return r, true
}

// install turns replayed state into live groups and ends the partition's
// loading state, unless op is no longer current (resigned or re-elected
// during the load): then nothing is installed and it reports false.
func (c *Coordinator) install(op *ownedPartition, r *groupReplay) bool {
	now := c.now().UnixMilli()
	var groups []*group
	pendingOf := map[string]map[int64]map[topicPartition]committedOffset{}
	for pid, byGroup := range r.pending {
		for id, tps := range byGroup {
			if len(tps) == 0 {
				continue
			}
			if pendingOf[id] == nil {
				pendingOf[id] = map[int64]map[topicPartition]committedOffset{}
			}
			pendingOf[id][pid] = tps
		}
	}
	for id, lg := range r.groups {
		if lg.metadata == nil && len(lg.offsets) == 0 && len(pendingOf[id]) == 0 {
			continue
		}
		g := newGroup(c, id, op)
		if lg.metadata != nil {
			g.restoreMetadata(lg.metadata)
			if g.mu.stateTime < 0 {
				g.mu.stateTime = now
			}
		}
		g.mu.offsets = lg.offsets
		if p := pendingOf[id]; p != nil {
			g.mu.pendingTxn = p
		}
		groups = append(groups, g)
	}
	c.mu.Lock()
	if c.mu.closed || c.mu.partitions[op.index] != op {
		c.mu.Unlock()
		return false
	}
	for _, g := range groups {
		c.mu.groups[g.id] = g
		for pid := range g.mu.pendingTxn {
			c.indexTxnLocked(pid, g.id)
		}
	}
	op.loading = false
	completions := op.completions
	op.completions = nil
	c.mu.Unlock()
	// Markers written while the partition loaded may lie beyond what the
	// replay read; each applies only to offsets written before it, so one
	// the replay already saw changes nothing.
	for _, tc := range completions {
		c.CompleteTransaction(op.index, tc.producerID, tc.commit, tc.markerOffset)
	}
	// Session timers start once the group can be reached; a group
	// unloaded since (Dead) gets none.
	for _, g := range groups {
		g.mu.Lock()
		if g.mu.state != groupDead {
			g.startSessions()
		}
		g.mu.Unlock()
	}
	return true
}
