package broker

import "github.com/twmb/franz-go/pkg/kmsg"

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
	return c.b.groups.OffsetDelete(c.b.ctx, kreq.(*kmsg.OffsetDeleteRequest)), nil
}
