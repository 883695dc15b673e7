package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// CreatePartitions, versions 0–3.
//
// Grows a topic to Count partitions; shrinking or keeping the count is
// INVALID_PARTITIONS, as in Kafka. validate_only checks without changing.
func init() { register(kmsg.CreatePartitions, 0, 3, handleCreatePartitions) }

func handleCreatePartitions(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	if resp, handled := c.forwardAdmin(h, kreq); handled {
		return resp, nil
	}
	b := c.b
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		fail := func(err *kerr.Error, format string, args ...any) {
			st.ErrorCode = err.Code
			msg := fmt.Sprintf(format, args...)
			st.ErrorMessage = &msg
		}
		t := b.topics.get(rt.Topic)
		switch {
		case t == nil:
			fail(kerr.UnknownTopicOrPartition, "topic %q does not exist", rt.Topic)
		case t.meta.Internal:
			fail(kerr.InvalidRequest, "cannot add partitions to internal topic %q", rt.Topic)
		case rt.Count <= t.count():
			fail(kerr.InvalidPartitions, "topic %q has %d partitions; the new count must be larger, got %d", rt.Topic, t.count(), rt.Count)
		case req.ValidateOnly:
		default:
			if err := b.topics.addPartitions(b.ctx, rt.Topic, rt.Count); err != nil {
				c.log.Error("create partitions failed", "topic", rt.Topic, "err", err)
				fail(errorCodeOr(err, kerr.UnknownServerError), "%v", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
