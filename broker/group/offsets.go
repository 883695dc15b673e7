package group

import (
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Committed offsets: validation of commits against the group's generation,
// storage as __consumer_offsets records, reads, deletes, and
// offsets.retention.minutes expiry. All functions here run with g.mu held.

// validateCommit is Kafka's ClassicGroup.validateOffsetCommit: a negative
// generation is an "admin" or simple-consumer commit, allowed only while the
// group has no members; otherwise the member id (and instance id) must be
// current, the generation must match, and the group must not be waiting for
// its leader's assignment. Commits are allowed during PreparingRebalance so
// members can commit before they rejoin (onPartitionsRevoked).
func (g *group) validateCommit(memberID string, instanceID *string, generation int32) *kerr.Error {
	if g.mu.state == groupDead {
		return kerr.CoordinatorNotAvailable
	}
	if generation < 0 && g.mu.state == groupEmpty {
		return nil
	}
	if e := g.checkInstance(instanceID, memberID); e != nil {
		return e
	}
	m := g.mu.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if generation != g.mu.generation {
		return kerr.IllegalGeneration
	}
	if g.mu.state == groupCompletingRebalance {
		return kerr.RebalanceInProgress
	}
	// A commit counts as a heartbeat, as in Kafka.
	g.touch(m)
	return nil
}

// offsetCommitPart is one partition of an OffsetCommit.
type offsetCommitPart struct {
	topic     string
	partition int32
	offset    committedOffset
	err       *kerr.Error // set before storing for per-partition rejections
}

// newCommitPart is one partition of an OffsetCommit or TxnOffsetCommit with
// the per-partition checks both make: OFFSET_METADATA_TOO_LARGE, and
// UNKNOWN_TOPIC_OR_PARTITION beyond the topic's n partitions.
func (c *Coordinator) newCommitPart(topic string, partition, n int32, o committedOffset) offsetCommitPart {
	part := offsetCommitPart{topic: topic, partition: partition, offset: o}
	switch {
	case len(o.metadata) > c.opts.OffsetMetadataMaxBytes:
		part.err = kerr.OffsetMetadataTooLarge
	case partition < 0 || partition >= n:
		part.err = kerr.UnknownTopicOrPartition
	}
	return part
}

// failRest sets e on every part that has no error yet (a group-level
// refusal of the whole commit).
func failRest(parts []offsetCommitPart, e *kerr.Error) {
	for i := range parts {
		if parts[i].err == nil {
			parts[i].err = e
		}
	}
}

// commit stores parts that have no error yet, setting err on each to the
// result.
func (g *group) commit(parts []offsetCommitPart) {
	var recs []groupRecord
	var idx []int
	for i := range parts {
		p := &parts[i]
		if p.err != nil {
			continue
		}
		recs = append(recs, offsetCommitRecord(g.id, p.topic, p.partition, p.offset))
		idx = append(idx, i)
	}
	if len(recs) == 0 {
		return
	}
	base, err := g.c.appendRecordsAt(g, recs)
	if err != nil {
		g.c.log.Error("cannot store offset commit", "group", g.id, "err", err)
		for _, i := range idx {
			parts[i].err = appendErr(err)
		}
		return
	}
	for k, i := range idx {
		p := &parts[i]
		p.offset.logOffset = base + int64(k)
		g.setOffset(p.topic, p.partition, p.offset)
		p.err = errNone
	}
}

func (g *group) setOffset(topic string, partition int32, o committedOffset) {
	ps := g.mu.offsets[topic]
	if ps == nil {
		ps = map[int32]committedOffset{}
		g.mu.offsets[topic] = ps
	}
	ps[partition] = o
}

func (g *group) deleteOffset(topic string, partition int32) {
	if ps := g.mu.offsets[topic]; ps != nil {
		delete(ps, partition)
		if len(ps) == 0 {
			delete(g.mu.offsets, topic)
		}
	}
}

func (g *group) hasOffsets() bool { return len(g.mu.offsets) > 0 }

// offsetFor returns the committed offset of one partition, or Kafka's
// "none" (-1, leader epoch -1, empty metadata).
func (g *group) offsetFor(topic string, partition int32) committedOffset {
	if g != nil {
		if o, ok := g.mu.offsets[topic][partition]; ok {
			return o
		}
	}
	return committedOffset{offset: -1, leaderEpoch: -1}
}

// committedTopics returns the group's topics and partitions, sorted.
func (g *group) committedTopics() []string {
	if g == nil {
		return nil
	}
	ts := make([]string, 0, len(g.mu.offsets))
	for t := range g.mu.offsets {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

func (g *group) committedPartitions(topic string) []int32 {
	ps := make([]int32, 0, len(g.mu.offsets[topic]))
	for p := range g.mu.offsets[topic] {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

// subscribedTopics decodes the members' consumer-protocol subscriptions.
// ok is false when the group is not a consumer group or a subscription does
// not decode — then nothing can be said about which topics are in use.
func (g *group) subscribedTopics() (topics map[string]bool, ok bool) {
	if g.mu.protocolType != "consumer" || g.mu.protocol == "" {
		return nil, false
	}
	topics = map[string]bool{}
	for _, m := range g.mu.members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(m.metadataFor(g.mu.protocol)); err != nil {
			return nil, false
		}
		for _, t := range md.Topics {
			topics[t] = true
		}
	}
	return topics, true
}

// deleteOffsets writes tombstones for the given partitions and forgets
// them. It reports the append error, if any.
func (g *group) deleteOffsets(tps map[string][]int32) error {
	var recs []groupRecord
	for t, ps := range tps {
		for _, p := range ps {
			recs = append(recs, offsetTombstone(g.id, t, p))
		}
	}
	if err := g.c.appendRecords(g, recs); err != nil {
		return err
	}
	for t, ps := range tps {
		for _, p := range ps {
			g.deleteOffset(t, p)
		}
	}
	return nil
}

// deleteGroup tombstones every offset and the group itself, then marks the
// group Dead and drops it (DeleteGroups, and expiry of an empty group).
func (g *group) deleteGroup() error {
	recs := []groupRecord{}
	for _, t := range g.committedTopics() {
		for _, p := range g.committedPartitions(t) {
			recs = append(recs, offsetTombstone(g.id, t, p))
		}
	}
	recs = append(recs, groupTombstone(g.id))
	if err := g.c.appendRecords(g, recs); err != nil {
		return err
	}
	g.mu.offsets = map[string]map[int32]committedOffset{}
	g.stopTimers()
	g.setState(groupDead)
	g.c.removeGroup(g)
	return nil
}

// expiredOffsets is Kafka's ClassicGroup.computeExpiredOffsets for the
// broker time now:
//   - an Empty group that had members (protocol type set) expires all its
//     offsets offsets.retention.minutes after it became Empty (KIP-211);
//   - a group that never had members (simple consumers, admin commits)
//     expires each offset that long after its commit;
//   - a Stable consumer group expires offsets of topics no member
//     subscribes to, counted from their commit;
//   - an offset committed with an explicit retention (OffsetCommit v2–v4)
//     expires at that time.
func (g *group) expiredOffsets(now time.Time, retention time.Duration) map[string][]int32 {
	nowMs, retMs := now.UnixMilli(), retention.Milliseconds()
	var subscribed map[string]bool
	byCommit := false
	switch {
	case g.mu.state == groupEmpty && g.mu.protocolType != "":
	case g.mu.state == groupEmpty:
		byCommit = true
	case g.mu.state == groupStable:
		var ok bool
		if subscribed, ok = g.subscribedTopics(); !ok {
			return nil
		}
		byCommit = true
	default:
		return nil
	}
	out := map[string][]int32{}
	for _, t := range g.committedTopics() {
		if subscribed[t] {
			continue
		}
		for _, p := range g.committedPartitions(t) {
			o := g.mu.offsets[t][p]
			base := g.mu.stateTime
			if byCommit {
				base = o.commitTime
			}
			expired := nowMs-base >= retMs
			if o.expireTime >= 0 {
				expired = nowMs >= o.expireTime
			}
			if expired {
				out[t] = append(out[t], p)
			}
		}
	}
	return out
}

// expireOffsets removes expired offsets and, when an Empty group is left
// with none, the group itself, as Kafka's cleanupGroupMetadata does.
func (g *group) expireOffsets(now time.Time, retention time.Duration) {
	if g.mu.state == groupDead {
		return
	}
	exp := g.expiredOffsets(now, retention)
	if len(exp) > 0 {
		if err := g.deleteOffsets(exp); err != nil {
			g.c.log.Error("cannot expire offsets", "group", g.id, "err", err)
			return
		}
		n := 0
		for _, ps := range exp {
			n += len(ps)
		}
		g.c.log.Info("expired committed offsets", "group", g.id, "partitions", n)
	}
	if g.mu.state == groupEmpty && !g.hasOffsets() && !g.hasAnyPendingTxn() {
		if err := g.deleteGroup(); err != nil {
			g.c.log.Error("cannot remove empty group", "group", g.id, "err", err)
		}
	}
}

// armExpiry schedules the next expiry pass offsets.retention.check.interval.ms
// from now, on the coordinator's clock (Kafka's delete-expired-group-metadata
// task).
func (c *Coordinator) armExpiry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.expiry = c.afterFuncLocked(c.opts.RetentionCheckInterval, func() {
		c.expireAll()
		c.armExpiry()
	})
}

// expireAll runs one expiry pass over every loaded group.
func (c *Coordinator) expireAll() {
	now := c.now()
	for _, g := range c.allGroups() {
		g.mu.Lock()
		g.expireOffsets(now, c.opts.OffsetsRetention)
		g.mu.Unlock()
	}
}
