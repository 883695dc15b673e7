package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup, versions 0–5.
//
// After JoinGroup, every member calls SyncGroup; the leader's request carries
// the assignments. Members wait until the leader's arrives, then each gets
// its own assignment and the group is Stable (its metadata is written to
// __consumer_offsets then). A member syncing a generation already Stable gets
// its assignment at once. Errors: UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// REBALANCE_IN_PROGRESS (a new rebalance began), FENCED_INSTANCE_ID (v3+,
// KIP-345). v5 checks and returns the protocol type and name (KIP-559).
func init() { register(kmsg.SyncGroup, 0, 5, handleSyncGroup) }

func handleSyncGroup(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.SyncGroupRequest)
	b := c.b
	if req.Group == "" {
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp, nil
	}
	sr := syncRequest{
		memberID:     req.MemberID,
		instanceID:   req.InstanceID,
		generation:   req.Generation,
		protocolType: req.ProtocolType,
		protocol:     req.Protocol,
		assignments:  req.GroupAssignment,
	}
	var resp *kmsg.SyncGroupResponse
	var wait chan *kmsg.SyncGroupResponse
	e := b.groups.withGroup(req.Group, false, func(g *group) {
		if g == nil {
			resp = kmsg.NewPtrSyncGroupResponse()
			resp.ErrorCode = kerr.UnknownMemberID.Code
			return
		}
		resp, wait = g.sync(sr)
	})
	if e != nil {
		resp = kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = e.Code
	}
	if resp == nil {
		select {
		case resp = <-wait:
		case <-b.ctx.Done():
			return nil, fmt.Errorf("%w: broker closing", errCloseConn)
		}
	}
	resp.Version = h.version
	return resp, nil
}
