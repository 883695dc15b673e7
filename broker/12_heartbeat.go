package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// Heartbeat, versions 0–4.
//
// Keeps a member's session alive (session.timeout.ms). REBALANCE_IN_PROGRESS
// tells the member to rejoin; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and
// FENCED_INSTANCE_ID (v3+, KIP-345) that it was removed or replaced.
func init() { register(kmsg.Heartbeat, 0, 4, handleHeartbeat) }

func handleHeartbeat(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.Heartbeat(c.b.ctx, kreq.(*kmsg.HeartbeatRequest)), nil
}
