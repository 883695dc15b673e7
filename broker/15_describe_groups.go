package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DescribeGroups, versions 0–6.
//
// State, protocol type, and members (id, client id, host; instance id v4+,
// KIP-345). As in Kafka's GroupMetadata.summary, the protocol and each
// member's metadata and assignment are given only while the group is Stable.
// An unknown group is reported Dead; v6 adds GROUP_ID_NOT_FOUND for it
// (KIP-1043). v3+ reports authorized operations when asked; with no ACLs
// yet every group operation is allowed.
func init() { register(kmsg.DescribeGroups, 0, 6, handleDescribeGroups) }

func handleDescribeGroups(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.DescribeGroups(c.b.ctx, kreq.(*kmsg.DescribeGroupsRequest)), nil
}
