package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetCommit, versions 0–9 (v10 names topics by id and is not offered).
//
// Commits are validated against the group (group_offsets.go,
// validateCommit): a negative generation is a simple-consumer or admin
// commit, allowed only while the group has no members; otherwise member id,
// group.instance.id (v7+, KIP-345) and generation must be current. The
// accepted partitions are written as one batch of OffsetCommitValue records
// to the group's __consumer_offsets partition before the answer, so a
// committed offset survives a crash. Per partition: metadata longer than
// offset.metadata.max.bytes (4096) gets OFFSET_METADATA_TOO_LARGE, an unknown
// topic or partition UNKNOWN_TOPIC_OR_PARTITION.
//
// v1's per-partition commit timestamp is ignored (the broker's clock is
// used, as Kafka does since 2.1); v2–v4's retention time, when set, gives the
// offsets their own expiry (written as value v1); v6+ stores the leader epoch
// (KIP-320).
func init() { register(kmsg.OffsetCommit, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.OffsetCommitRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	now := b.now().UnixMilli()
	var parts []offsetCommitPart
	for _, rt := range req.Topics {
		t := b.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			o := committedOffset{offset: rp.Offset, leaderEpoch: -1, commitTime: now, expireTime: -1}
			if rp.Metadata != nil {
				o.metadata = *rp.Metadata
			}
			if h.version >= 6 {
				o.leaderEpoch = rp.LeaderEpoch
			}
			if h.version >= 2 && h.version <= 4 && req.RetentionTimeMillis >= 0 {
				o.expireTime = now + req.RetentionTimeMillis
			}
			part := offsetCommitPart{topic: rt.Topic, partition: rp.Partition, offset: o}
			switch {
			case len(o.metadata) > offsetMetadataMaxBytes:
				part.err = kerr.OffsetMetadataTooLarge
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.partitions):
				part.err = kerr.UnknownTopicOrPartition
			}
			parts = append(parts, part)
		}
	}
	setAll := func(e *kerr.Error) {
		for i := range parts {
			if parts[i].err == nil {
				parts[i].err = e
			}
		}
	}
	if req.Group == "" {
		setAll(kerr.InvalidGroupID)
	} else {
		e := b.groups.withGroup(req.Group, req.Generation < 0, func(g *group) {
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
	return resp, nil
}
