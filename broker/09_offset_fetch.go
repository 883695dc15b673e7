package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch, versions 0–9 (v10 names topics by id and is not offered).
//
// Returns committed offsets; a partition with none gets offset -1 and no
// error, as does every partition of an unknown group. v2+ may ask for all
// the group's offsets (null topics) and report group-level errors
// (COORDINATOR_LOAD_IN_PROGRESS while the group's partition loads) in the
// top-level error code; v0–v1 carry them per partition. v5+ returns the
// committed leader epoch (KIP-320). v7's require_stable concerns pending
// transactional commits, which Strata does not have yet, so it changes
// nothing. v8+ asks for several groups at once (KIP-709). v9's member id and
// epoch belong to KIP-848 consumer groups; classic groups ignore them, as
// Kafka does.
func init() { register(kmsg.OffsetFetch, 0, 9, handleOffsetFetch) }

func handleOffsetFetch(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if h.version >= 8 {
		for _, rg := range req.Groups {
			var topics []kmsg.OffsetFetchRequestTopic
			if rg.Topics != nil {
				topics = []kmsg.OffsetFetchRequestTopic{}
				for _, t := range rg.Topics {
					topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t.Topic, Partitions: t.Partitions})
				}
			}
			resp.Groups = append(resp.Groups, c.b.fetchGroupOffsets(rg.Group, topics))
		}
		return resp, nil
	}
	topics := req.Topics
	if h.version < 2 && topics == nil {
		topics = []kmsg.OffsetFetchRequestTopic{}
	}
	sg := c.b.fetchGroupOffsets(req.Group, topics)
	resp.ErrorCode = sg.ErrorCode
	if h.version < 2 && sg.ErrorCode != 0 {
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
	return resp, nil
}

// fetchGroupOffsets answers one group; nil topics means all committed.
func (b *Broker) fetchGroupOffsets(groupID string, topics []kmsg.OffsetFetchRequestTopic) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = groupID
	if groupID == "" {
		sg.ErrorCode = kerr.InvalidGroupID.Code
		return sg
	}
	e := b.groups.withGroup(groupID, false, func(g *group) {
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
