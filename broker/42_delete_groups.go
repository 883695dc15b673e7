package broker

import "github.com/twmb/franz-go/pkg/kmsg"

// DeleteGroups, versions 0–3 (KIP-229).
//
// Deletes groups with no members: tombstones for every committed offset and
// for the group's metadata go to __consumer_offsets, then the group is gone.
// A group with members gets NON_EMPTY_GROUP, an unknown one
// GROUP_ID_NOT_FOUND. v2+ is flexible; v3 adds an error message.
func init() { register(kmsg.DeleteGroups, 0, 3, handleDeleteGroups) }

func handleDeleteGroups(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	return c.b.groups.DeleteGroups(c.b.ctx, kreq.(*kmsg.DeleteGroupsRequest)), nil
}
