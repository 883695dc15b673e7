package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups, versions 0–3 (KIP-229).
//
// Deletes groups with no members: tombstones for every committed offset and
// for the group's metadata go to __consumer_offsets, then the group is gone.
// A group with members gets NON_EMPTY_GROUP, an unknown one
// GROUP_ID_NOT_FOUND. v2+ is flexible; v3 adds an error message.
func init() { register(kmsg.DeleteGroups, 0, 3, handleDeleteGroups) }

func handleDeleteGroups(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = id
		code := errNone
		if id == "" {
			code = kerr.InvalidGroupID
		} else if e := c.b.groups.withGroup(id, false, func(g *group) {
			switch {
			case g == nil || g.state == groupDead:
				code = kerr.GroupIDNotFound
			case g.state != groupEmpty:
				code = kerr.NonEmptyGroup
			default:
				if err := g.deleteGroup(); err != nil {
					c.log.Error("delete group", "group", id, "err", err)
					code = appendErr(err)
				}
			}
		}); e != nil {
			code = e
		}
		sg.ErrorCode = code.Code
		if code != errNone && h.version >= 3 {
			msg := code.Message
			sg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
