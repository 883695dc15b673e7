package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// LeaveGroup, versions 0–5.
//
// Removes members and starts a rebalance, so their partitions move at once
// instead of after session.timeout.ms. v0–v2 name one member; v3+ batch
// members, each by member id or by group.instance.id (KIP-345; a member id
// that does not match the instance's gets FENCED_INSTANCE_ID). v5 adds a
// reason per member (KIP-800), logged.
func init() { register(kmsg.LeaveGroup, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.LeaveGroup(c.b.ctx, kreq.(*kmsg.LeaveGroupRequest)), nil
}
