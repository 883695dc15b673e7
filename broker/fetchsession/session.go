package fetchsession

import "time"

// session is one incremental fetch session: Kafka's FetchSession with its
// CachedPartitions. Its fields are guarded by the Cache's mutex.
type session struct {
	id       int32
	follower bool // privileged: a replica's session
	topicIDs bool
	created  time.Time
	lastUsed time.Time
	// epoch is the epoch the client must send next.
	epoch int32
	// order is the fetch order; parts indexes it by key.
	order   []*cachedPartition
	parts   map[Key]*cachedPartition
	scratch []*cachedPartition // reused by recordOutcomes
}

// cachedPartition is what a session remembers of one partition: the
// fetcher's last parameters and what it was last told.
type cachedPartition struct {
	Partition
	highWatermark    int64
	lastStableOffset int64
	logStartOffset   int64 // this broker's, as last sent
	hadData          bool  // scratch mark inside recordOutcomes
}

func newSession(id int32, follower, topicIDs bool, now time.Time, parts []Partition, outcomes []Outcome) *session {
	s := &session{id: id, follower: follower, topicIDs: topicIDs, created: now, lastUsed: now,
		epoch: nextEpoch(InitialEpoch), parts: make(map[Key]*cachedPartition, len(parts)), order: make([]*cachedPartition, 0, len(parts))}
	for i, p := range parts {
		cp := s.parts[p.Key]
		if cp == nil {
			cp = &cachedPartition{Partition: p}
			s.parts[p.Key] = cp
			s.order = append(s.order, cp)
		}
		cp.Params = p.Params
		if i < len(outcomes) {
			cp.remember(outcomes[i])
		}
	}
	return s
}

// remember stores what a response told the fetcher; an error leaves the
// high watermark unknown (-1), so the partition is sent again once the
// error clears.
func (cp *cachedPartition) remember(o Outcome) {
	cp.highWatermark, cp.lastStableOffset, cp.logStartOffset = o.HighWatermark, o.LastStableOffset, o.LogStartOffset
	if o.Error {
		cp.highWatermark = -1
	}
}

// update applies an incremental request: new partitions are added at the
// end, known ones take the new parameters, forgotten ones go.
func (s *session) update(parts []Partition, forgotten []Key) {
	for _, p := range parts {
		if cp := s.parts[p.Key]; cp != nil {
			cp.Params = p.Params
			continue
		}
		cp := &cachedPartition{Partition: p, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1}
		s.parts[p.Key] = cp
		s.order = append(s.order, cp)
	}
	if len(forgotten) == 0 {
		return
	}
	removed := 0
	for _, k := range forgotten {
		if s.parts[k] != nil {
			delete(s.parts, k)
			removed++
		}
	}
	if removed == 0 {
		return
	}
	kept := s.order[:0]
	for _, cp := range s.order {
		if s.parts[cp.Key] == cp {
			kept = append(kept, cp)
		}
	}
	clear(s.order[len(kept):])
	s.order = kept
}

// snapshot copies the partitions to read, in order.
func (s *session) snapshot() []Partition {
	out := make([]Partition, len(s.order))
	for i, cp := range s.order {
		out[i] = cp.Partition
	}
	return out
}

// recordOutcomes decides what an incremental response carries (setting
// Send) and remembers it, then moves the partitions that had records to the
// end of the order. read is the snapshot the fetch read, outcomes[i] its
// i-th partition; a partition forgotten meanwhile is sent, not remembered.
func (s *session) recordOutcomes(read []Partition, outcomes []Outcome) {
	moved := 0
	for i := range outcomes {
		o := &outcomes[i]
		var cp *cachedPartition
		if i < len(read) {
			cp = s.parts[read[i].Key]
		}
		if cp == nil {
			o.Send = true
			continue
		}
		o.Send = o.HasRecords || o.Error || o.Diverging ||
			cp.highWatermark != o.HighWatermark || cp.lastStableOffset != o.LastStableOffset || cp.logStartOffset != o.LogStartOffset
		cp.remember(*o)
		if o.HasRecords && !cp.hadData {
			cp.hadData = true
			moved++
		}
	}
	if moved == 0 {
		return
	}
	// A stable partition of the order: those without data, then those
	// with, through a scratch slice the session keeps.
	s.scratch = append(s.scratch[:0], s.order...)
	n := 0
	for _, cp := range s.scratch {
		if !cp.hadData {
			s.order[n] = cp
			n++
		}
	}
	for _, cp := range s.scratch {
		if cp.hadData {
			cp.hadData = false
			s.order[n] = cp
			n++
		}
	}
	clear(s.scratch)
}
