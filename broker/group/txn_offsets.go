package group

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactional offset commits (KIP-98, KIP-447): a consume-transform-produce
// application commits its consumer offsets inside its transaction with
// TxnOffsetCommit. The offsets are written to the group's __consumer_offsets
// partition in a transactional batch of the producer, and stay pending —
// invisible to OffsetFetch — until the transaction coordinator's marker for
// that producer lands in the same partition: a commit marker makes them the
// group's committed offsets, an abort drops them (Kafka's
// GroupMetadata.pendingTransactionalOffsetCommits and
// completePendingTxnOffsetCommit). A consumer asking OffsetFetch with
// require_stable (KIP-447) gets UNSTABLE_OFFSET_COMMIT for a partition with a
// pending commit, and retries until the transaction ends.
//
// Replaying a partition does the same with the markers it reads (load.go);
// markers written while a partition loads are queued and applied after.

// topicPartition names one partition whose offset a group commits.
type topicPartition struct {
	topic     string
	partition int32
}

// txnCompletion is a marker that reached a partition while it was loading.
type txnCompletion struct {
	producerID   int64
	commit       bool
	markerOffset int64
}

// TxnOffsetCommit answers a TxnOffsetCommit (v0–v4). The broker has checked
// the request's topics exist and, with the transaction coordinator, that
// the group's __consumer_offsets partition is in the producer's transaction
// (KIP-890: verification is its guard, handed to Log.AppendTxn). As Kafka's
// doTxnCommitOffsets: the group is created if unknown; a Dead group is
// COORDINATOR_NOT_AVAILABLE; v3+'s member id, instance id and generation
// are checked like OffsetCommit's when given (UNKNOWN_MEMBER_ID,
// FENCED_INSTANCE_ID, ILLEGAL_GENERATION), and a commit without them is
// accepted even from a non-empty group (older clients send none). Per
// partition: OFFSET_METADATA_TOO_LARGE, UNKNOWN_TOPIC_OR_PARTITION. A
// producer epoch older than the partition has seen is INVALID_PRODUCER_EPOCH
// (a fenced zombie).
func (c *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, verification any) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	now := c.now().UnixMilli()
	var parts []offsetCommitPart
	for _, rt := range req.Topics {
		n := c.host.TopicPartitions(rt.Topic)
		for _, rp := range rt.Partitions {
			o := committedOffset{offset: rp.Offset, leaderEpoch: -1, commitTime: now, expireTime: -1}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			if req.Version >= 2 {
				o.leaderEpoch = rp.LeaderEpoch
			}
			parts = append(parts, c.newCommitPart(rt.Topic, rp.Partition, n, o))
		}
	}
	setAll := func(e *kerr.Error) { failRest(parts, e) }
	switch {
	case req.Group == "":
		setAll(kerr.InvalidGroupID)
	case req.ProducerID < 0 || req.ProducerEpoch < 0:
		setAll(kerr.InvalidProducerIDMapping)
	default:
		e := c.withGroup(ctx, req.Group, true, func(g *group) {
			if e := g.validateTxnCommit(req); e != nil {
				setAll(e)
				return
			}
			g.commitTxn(parts, req.ProducerID, req.ProducerEpoch, verification)
		})
		if e != nil {
			setAll(e)
		}
	}
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition = parts[i].partition
			sp.ErrorCode = parts[i].err.Code
			st.Partitions = append(st.Partitions, sp)
			i++
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// validateTxnCommit is Kafka's validateOffsetCommit with isTransactional.
func (g *group) validateTxnCommit(req *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	switch {
	case g.mu.state == groupDead:
		return kerr.CoordinatorNotAvailable
	case req.Generation < 0 && g.mu.state == groupEmpty:
		return nil
	case req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil:
		if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
			return e
		}
		if g.mu.members[req.MemberID] == nil {
			return kerr.UnknownMemberID
		}
		if req.Generation != g.mu.generation {
			return kerr.IllegalGeneration
		}
	}
	return nil
}

// commitTxn writes the parts without an error as one transactional batch
// and keeps them pending for the producer, setting each part's err.
func (g *group) commitTxn(parts []offsetCommitPart, producerID int64, producerEpoch int16, verification any) {
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
	c := g.c
	base, err := g.owner.log.AppendTxn(c.ctx, buildTxnGroupBatch(recs, c.now().UnixMilli(), producerID, producerEpoch), verification)
	if err != nil {
		e := txnAppendErr(err)
		if e != kerr.InvalidProducerEpoch && e != kerr.InvalidTxnState {
			c.log.Error("cannot store transactional offset commit", "group", g.id, "producer_id", producerID, "err", err)
		}
		for _, i := range idx {
			parts[i].err = e
		}
		return
	}
	pend := g.mu.pendingTxn[producerID]
	if pend == nil {
		pend = map[topicPartition]committedOffset{}
		g.mu.pendingTxn[producerID] = pend
	}
	for k, i := range idx {
		p := &parts[i]
		p.offset.logOffset = base + int64(k)
		pend[topicPartition{p.topic, p.partition}] = p.offset
		p.err = errNone
	}
	c.mu.Lock()
	c.indexTxnLocked(producerID, g.id)
	c.mu.Unlock()
}

// txnAppendErr keeps the log's transactional refusals (a fenced epoch, an
// unverified write) and maps the rest as appendErr does.
func txnAppendErr(err error) *kerr.Error {
	var ke *kerr.Error
	if errors.As(err, &ke) && (ke == kerr.InvalidProducerEpoch || ke == kerr.InvalidTxnState) {
		return ke
	}
	return appendErr(err)
}

// CompleteTransaction applies a transaction marker the broker wrote (and saw
// committed) at markerOffset of __consumer_offsets partition p for
// producerID: the producer's pending offsets written before the marker in
// that partition's groups are committed (if newer than the group's
// committed offset) or dropped (Kafka's handleTxnCompletion). A partition
// still loading queues it; one this broker does not coordinate ignores it
// (whoever loads the partition replays the marker). Applying the same
// marker twice changes nothing.
func (c *Coordinator) CompleteTransaction(p int32, producerID int64, commit bool, markerOffset int64) {
	c.mu.Lock()
	op := c.mu.partitions[p]
	if c.mu.closed || op == nil {
		c.mu.Unlock()
		return
	}
	if op.loading {
		op.completions = append(op.completions, txnCompletion{producerID: producerID, commit: commit, markerOffset: markerOffset})
		c.mu.Unlock()
		return
	}
	var groups []*group
	ids := c.mu.txnGroups[producerID]
	for id := range ids {
		switch g := c.mu.groups[id]; {
		case g == nil:
			delete(ids, id) // unloaded or deleted since
		case g.owner == op:
			groups = append(groups, g)
		}
	}
	if len(ids) == 0 {
		delete(c.mu.txnGroups, producerID)
	}
	c.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		if g.mu.state != groupDead {
			g.completeTxn(producerID, commit, markerOffset)
		}
		g.mu.Unlock()
	}
}

// completeTxn resolves the producer's pending offsets written before
// markerOffset. Caller holds g.mu.
func (g *group) completeTxn(producerID int64, commit bool, markerOffset int64) {
	pend := g.mu.pendingTxn[producerID]
	for tp, o := range pend {
		if o.logOffset >= markerOffset {
			continue // a later transaction's
		}
		if commit {
			if cur, ok := g.mu.offsets[tp.topic][tp.partition]; !ok || cur.logOffset < o.logOffset {
				g.setOffset(tp.topic, tp.partition, o)
			}
		}
		delete(pend, tp)
	}
	if len(pend) > 0 {
		return
	}
	delete(g.mu.pendingTxn, producerID)
	c := g.c
	c.mu.Lock()
	if ids := c.mu.txnGroups[producerID]; ids != nil {
		delete(ids, g.id)
		if len(ids) == 0 {
			delete(c.mu.txnGroups, producerID)
		}
	}
	c.mu.Unlock()
}

// indexTxnLocked records that group id has offsets pending for producerID,
// so a marker finds the groups it completes without visiting every group.
// Caller holds c.mu. Stale entries (a group unloaded since) are skipped by
// CompleteTransaction.
func (c *Coordinator) indexTxnLocked(producerID int64, id string) {
	ids := c.mu.txnGroups[producerID]
	if ids == nil {
		ids = map[string]struct{}{}
		c.mu.txnGroups[producerID] = ids
	}
	ids[id] = struct{}{}
}

// hasPendingTxn reports whether a transactional commit for the partition is
// waiting for its marker (Kafka's hasPendingOffsetCommitsForTopicPartition).
// Caller holds g.mu; a nil group (unknown) has none.
func (g *group) hasPendingTxn(topic string, partition int32) bool {
	if g == nil {
		return false
	}
	for _, pend := range g.mu.pendingTxn {
		if _, ok := pend[topicPartition{topic, partition}]; ok {
			return true
		}
	}
	return false
}

// hasAnyPendingTxn: the group must not expire while a transaction may still
// commit offsets into it.
func (g *group) hasAnyPendingTxn() bool { return len(g.mu.pendingTxn) > 0 }
