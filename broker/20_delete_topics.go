package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/coord"
)

// DeleteTopics, versions 0–6.
//
// Removes the topic from coord first, then its partition folders. v6 may name
// topics by id. Internal topics cannot be deleted (Kafka refuses too).
func init() { register(kmsg.DeleteTopics, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	if resp, handled := c.forwardAdmin(h, kreq); handled {
		return resp, nil
	}
	b := c.b
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	targets := req.Topics
	if h.version < 6 {
		for _, n := range req.TopicNames {
			n := n
			targets = append(targets, kmsg.DeleteTopicsRequestTopic{Topic: &n})
		}
	}
	for _, rt := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		var t *topic
		if rt.Topic != nil {
			st.Topic = rt.Topic
			t = b.topics.get(*rt.Topic)
		} else {
			t = b.topics.getByID(rt.TopicID)
		}
		fail := func(err *kerr.Error, msg string) {
			st.ErrorCode = err.Code
			st.ErrorMessage = &msg
		}
		switch {
		case t == nil && rt.Topic == nil:
			st.TopicID = rt.TopicID
			fail(kerr.UnknownTopicID, "unknown topic id")
		case t == nil:
			fail(kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", *rt.Topic))
		case t.meta.Internal:
			fail(kerr.InvalidTopicException, fmt.Sprintf("internal topic %q cannot be deleted", t.meta.Name))
		default:
			name := t.meta.Name
			st.Topic, st.TopicID = &name, t.meta.ID
			if err := b.topics.remove(b.ctx, name); err != nil {
				if errors.Is(err, coord.ErrUnknownTopic) {
					fail(kerr.UnknownTopicOrPartition, fmt.Sprintf("topic %q does not exist", name))
				} else {
					c.log.Error("delete topic failed", "topic", name, "err", err)
					fail(kerr.UnknownServerError, err.Error())
				}
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
