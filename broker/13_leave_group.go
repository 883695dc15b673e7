package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup, versions 0–5.
//
// Removes members and starts a rebalance, so their partitions move at once
// instead of after session.timeout.ms. v0–v2 name one member; v3+ batch
// members, each by member id or by group.instance.id (KIP-345; a member id
// that does not match the instance's gets FENCED_INSTANCE_ID). v5 adds a
// reason per member (KIP-800), logged.
func init() { register(kmsg.LeaveGroup, 0, 5, handleLeaveGroup) }

func handleLeaveGroup(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if h.version < 3 {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = req.MemberID
		members = []kmsg.LeaveGroupRequestMember{m}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	for _, rm := range members {
		if rm.Reason != nil && *rm.Reason != "" {
			c.log.Debug("leave group", "group", req.Group, "member", rm.MemberID, "reason", *rm.Reason)
		}
	}
	e := c.b.groups.withGroup(req.Group, false, func(g *group) {
		for _, rm := range members {
			out := kmsg.NewLeaveGroupResponseMember()
			out.MemberID, out.InstanceID = rm.MemberID, rm.InstanceID
			code := kerr.UnknownMemberID
			if g != nil {
				out.MemberID, code = g.leave(rm.MemberID, rm.InstanceID)
			}
			out.ErrorCode = code.Code
			resp.Members = append(resp.Members, out)
		}
	})
	if e != nil {
		resp.ErrorCode, resp.Members = e.Code, nil
		return resp, nil
	}
	if h.version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp, nil
}
