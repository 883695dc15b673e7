package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat, versions 0–4.
//
// Keeps a member's session alive (session.timeout.ms). REBALANCE_IN_PROGRESS
// tells the member to rejoin; UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION and
// FENCED_INSTANCE_ID (v3+, KIP-345) that it was removed or replaced.
func init() { register(kmsg.Heartbeat, 0, 4, handleHeartbeat) }

func handleHeartbeat(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	code := kerr.UnknownMemberID
	e := c.b.groups.withGroup(req.Group, false, func(g *group) {
		if g != nil {
			code = g.heartbeat(req.MemberID, req.InstanceID, req.Generation)
		}
	})
	if e != nil {
		code = e
	}
	resp.ErrorCode = code.Code
	return resp, nil
}
