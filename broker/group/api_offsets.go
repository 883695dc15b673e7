package group

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit answers an OffsetCommit (v0–v9). Accepted partitions are
// written as one batch to the group's __consumer_offsets partition and
// answered once that write is committed. Per partition: metadata longer
// than offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE, an unknown
// topic or partition UNKNOWN_TOPIC_OR_PARTITION. v1's per-partition commit
// timestamp is ignored (the coordinator's clock is used, as Kafka does since
// 2.1); v2–v4's retention time gives the offsets their own expiry; v6+
// stores the leader epoch (KIP-320).
func (c *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) *kmsg.OffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	now := c.now().UnixMilli()
	var parts []offsetCommitPart
	for _, rt := range req.Topics {
		n := c.host.TopicPartitions(rt.Topic)
		for _, rp := range rt.Partitions {
			o := committedOffset{offset: rp.Offset, leaderEpoch: -1, commitTime: now, expireTime: -1}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			if req.Version >= 6 {
				o.leaderEpoch = rp.LeaderEpoch
			}
			if req.Version >= 2 && req.Version <= 4 && req.RetentionTimeMillis >= 0 {
				o.expireTime = now + req.RetentionTimeMillis
			}
			parts = append(parts, c.newCommitPart(rt.Topic, rp.Partition, n, o))
		}
	}
	setAll := func(e *kerr.Error) { failRest(parts, e) }
	if req.Group == "" {
		setAll(kerr.InvalidGroupID)
	} else {
		e := c.withGroup(ctx, req.Group, req.Generation < 0, func(g *group) {
			if g == nil {
				// No such group and a real generation: a commit from a
				// member of a group that is gone (Kafka answers the same).
				setAll(kerr.IllegalGeneration)
				return
			}
			if e := g.validateCommit(req.MemberID, req.InstanceID, req.Generation); e != nil {
				setAll(e)
				return
			}
			g.commit(parts)
		})
		if e != nil {
			setAll(e)
		}
	}
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = parts[i].partition
			sp.ErrorCode = parts[i].err.Code
			st.Partitions = append(st.Partitions, sp)
			i++
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// OffsetFetch answers an OffsetFetch (v0–v9): committed offsets, -1 for a
// partition with none and for every partition of an unknown group; v7+'s
// require_stable waits out pending transactional commits (KIP-447). v2+ may
// ask for all of a group's offsets (null topics) and carry group-level
// errors at the top; v0–v1 carry them per partition; v8+ asks for several
// groups (KIP-709).
func (c *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) *kmsg.OffsetFetchResponse {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			var topics []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				topics = []kmsg.OffsetFetchRequestTopic{}
				for _, t := range rg.Topics {
					topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			resp.Groups = append(resp.Groups, c.fetchGroupOffsets(ctx, rg.Group, topics, req.RequireStable))
		}
		return resp
	}
	topics := req.Topics
	if req.Version < 2 && topics == nil {
		topics = []kmsg.OffsetFetchRequestTopic{}
	}
	sg := c.fetchGroupOffsets(ctx, req.Group, topics, req.Version >= 7 && req.RequireStable)
	resp.ErrorCode = sg.ErrorCode
	if req.Version < 2 && sg.ErrorCode != 0 {
		// v0–v1 have no group-level error: put it on each partition.
		sg = failedOffsetFetch(req.Group, topics, kerr.ErrorForCode(sg.ErrorCode).(*kerr.Error))
		resp.ErrorCode = 0
	}
	for _, t := range sg.Topics {
		rt := kmsg.NewOffsetFetchResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// fetchGroupOffsets answers one group; nil topics means all committed.
// requireStable (KIP-447, v7+) answers UNSTABLE_OFFSET_COMMIT for a
// partition whose transactional commit waits for its marker
// (txn_offsets.go); without it the committed offset is returned.
func (c *Coordinator) fetchGroupOffsets(ctx context.Context, groupID string, topics []kmsg.OffsetFetchRequestTopic, requireStable bool) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = groupID
	if groupID == "" {
		sg.ErrorCode = kerr.InvalidGroupID.Code
		return sg
	}
	e := c.withGroup(ctx, groupID, false, func(g *group) {
		if topics == nil {
			for _, t := range g.committedTopics() {
				topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: g.committedPartitions(t)})
			}
		}
		for _, t := range topics {
			st := kmsg.NewOffsetFetchResponseGroupTopic()
			st.Topic = t.Topic
			for _, p := range t.Partitions {
				o := g.offsetFor(t.Topic, p)
				sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				sp.Partition, sp.Offset, sp.LeaderEpoch = p, o.offset, o.leaderEpoch
				md := o.metadata
				sp.Metadata = &md
				if requireStable && g.hasPendingTxn(t.Topic, p) {
					sp.Offset, sp.LeaderEpoch, sp.ErrorCode = -1, -1, kerr.UnstableOffsetCommit.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			sg.Topics = append(sg.Topics, st)
		}
	})
	if e != nil {
		sg.ErrorCode, sg.Topics = e.Code, nil
	}
	return sg
}

func failedOffsetFetch(groupID string, topics []kmsg.OffsetFetchRequestTopic, e *kerr.Error) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = groupID
	for _, t := range topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, -1, -1, e.Code
			st.Partitions = append(st.Partitions, sp)
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}

// OffsetDelete answers an OffsetDelete (v0, KIP-496): tombstones for some
// of a group's committed offsets. GROUP_ID_NOT_FOUND for an unknown group;
// while a consumer group has members, partitions of topics a member
// subscribes to get GROUP_SUBSCRIBED_TO_TOPIC, and a non-consumer group
// with members NON_EMPTY_GROUP.
func (c *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) *kmsg.OffsetDeleteResponse {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	type part struct {
		topic     string
		partition int32
		err       *kerr.Error
	}
	var parts []part
	for _, rt := range req.Topics {
		n := c.host.TopicPartitions(rt.Topic)
		for _, rp := range rt.Partitions {
			p := part{topic: rt.Topic, partition: rp.Partition}
			if rp.Partition < 0 || rp.Partition >= n {
				p.err = kerr.UnknownTopicOrPartition
			}
			parts = append(parts, p)
		}
	}
	top := errNone
	if req.Group == "" {
		top = kerr.InvalidGroupID
	} else if e := c.withGroup(ctx, req.Group, false, func(g *group) {
		if g == nil || g.mu.state == groupDead {
			top = kerr.GroupIDNotFound
			return
		}
		var subscribed map[string]bool
		if g.mu.state != groupEmpty {
			var ok bool
			if subscribed, ok = g.subscribedTopics(); !ok {
				top = kerr.NonEmptyGroup
				return
			}
		}
		del := map[string][]int32{}
		for i := range parts {
			p := &parts[i]
			if p.err != nil {
				continue
			}
			if subscribed[p.topic] {
				p.err = kerr.GroupSubscribedToTopic
				continue
			}
			if _, ok := g.mu.offsets[p.topic][p.partition]; ok {
				del[p.topic] = append(del[p.topic], p.partition)
			}
			p.err = errNone
		}
		if err := g.deleteOffsets(del); err != nil {
			c.log.Error("offset delete", "group", req.Group, "err", err)
			top = appendErr(err)
		}
	}); e != nil {
		top = e
	}
	resp.ErrorCode = top.Code
	if top != errNone {
		return resp
	}
	i := 0
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		for range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition, sp.ErrorCode = parts[i].partition, parts[i].err.Code
			st.Partitions = append(st.Partitions, sp)
			i++
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
