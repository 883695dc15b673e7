package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete, version 0 (KIP-496).
//
// Deletes a group's committed offsets for some partitions (tombstones in
// __consumer_offsets). An unknown group gets GROUP_ID_NOT_FOUND. While a
// consumer group has members, partitions of topics a member subscribes to
// get GROUP_SUBSCRIBED_TO_TOPIC; a non-consumer group with members gets
// NON_EMPTY_GROUP. Unknown topics or partitions get
// UNKNOWN_TOPIC_OR_PARTITION; deleting an offset that was never committed
// succeeds.
func init() { register(kmsg.OffsetDelete, 0, 0, handleOffsetDelete) }

func handleOffsetDelete(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	type part struct {
		topic     string
		partition int32
		err       *kerr.Error
	}
	var parts []part
	for _, rt := range req.Topics {
		t := b.topics.get(rt.Topic)
		for _, rp := range rt.Partitions {
			p := part{topic: rt.Topic, partition: rp.Partition}
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.partitions) {
				p.err = kerr.UnknownTopicOrPartition
			}
			parts = append(parts, p)
		}
	}
	top := errNone
	if req.Group == "" {
		top = kerr.InvalidGroupID
	} else if e := b.groups.withGroup(req.Group, false, func(g *group) {
		if g == nil || g.state == groupDead {
			top = kerr.GroupIDNotFound
			return
		}
		var subscribed map[string]bool
		if g.state != groupEmpty {
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
			if _, ok := g.offsets[p.topic][p.partition]; ok {
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
		return resp, nil
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
	return resp, nil
}
