package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The member requests of the classic protocol. Each takes the decoded
// request (its Version set) and returns the response to send; the broker's
// NN_name.go files name the versions and the Kafka behaviour.

// JoinGroup answers a JoinGroup (v0–v9). It waits until the group's join
// phase completes (rebalance.go) or ctx ends; an error means ctx ended and
// there is no answer to send. clientID and clientHost describe the
// connection (DescribeGroups reports them).
func (c *Coordinator) JoinGroup(ctx context.Context, req *kmsg.JoinGroupRequest, clientID, clientHost string) (*kmsg.JoinGroupResponse, error) {
	resp, wait := c.startJoin(ctx, req, clientID, clientHost)
	if resp == nil {
		select {
		case resp = <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	resp.Version = req.Version
	return resp, nil
}

// startJoin is JoinGroup up to the wait: an answer now, or the channel the
// rebalance will answer on.
func (c *Coordinator) startJoin(ctx context.Context, req *kmsg.JoinGroupRequest, clientID, clientHost string) (*kmsg.JoinGroupResponse, <-chan *kmsg.JoinGroupResponse) {
	fail := func(e *kerr.Error) (*kmsg.JoinGroupResponse, <-chan *kmsg.JoinGroupResponse) {
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.MemberID, resp.Generation = e.Code, req.MemberID, -1
		return resp, nil
	}
	if req.Group == "" {
		return fail(kerr.InvalidGroupID)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < c.opts.MinSessionTimeout || session > c.opts.MaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout)
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol)
	}
	rebalance := time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	if req.Version == 0 || rebalance <= 0 {
		rebalance = session
	}
	if req.Reason != nil && *req.Reason != "" {
		c.log.Debug("join group", "group", req.Group, "member", req.MemberID, "reason", *req.Reason)
	}
	jr := joinRequest{
		version:          req.Version,
		memberID:         req.MemberID,
		instanceID:       req.InstanceID,
		clientID:         clientID,
		clientHost:       clientHost,
		sessionTimeout:   session,
		rebalanceTimeout: rebalance,
		protocolType:     req.ProtocolType,
		protocols:        req.Protocols,
	}
	var resp *kmsg.JoinGroupResponse
	var wait chan *kmsg.JoinGroupResponse
	if e := c.withGroup(ctx, req.Group, true, func(g *group) { resp, wait = g.join(jr) }); e != nil {
		return fail(e)
	}
	return resp, wait
}

// SyncGroup answers a SyncGroup (v0–v5). Members wait for the leader's
// assignments (or ctx's end: an error, nothing to send).
func (c *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) (*kmsg.SyncGroupResponse, error) {
	resp, wait := c.startSync(ctx, req)
	if resp == nil {
		select {
		case resp = <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	resp.Version = req.Version
	return resp, nil
}

// startSync is SyncGroup up to the wait for the leader's assignments.
func (c *Coordinator) startSync(ctx context.Context, req *kmsg.SyncGroupRequest) (*kmsg.SyncGroupResponse, <-chan *kmsg.SyncGroupResponse) {
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
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
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
	return resp, wait
}

// Heartbeat answers a Heartbeat (v0–v4).
func (c *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) *kmsg.HeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	code := kerr.UnknownMemberID
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
		if g != nil {
			code = g.heartbeat(req.MemberID, req.InstanceID, req.Generation)
		}
	})
	if e != nil {
		code = e
	}
	resp.ErrorCode = code.Code
	return resp
}

// LeaveGroup answers a LeaveGroup (v0–v5): v0–v2 name one member, v3+ a
// batch, each by member id or group.instance.id (KIP-345).
func (c *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) *kmsg.LeaveGroupResponse {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	members := req.Members
	if req.Version < 3 {
		m := kmsg.NewLeaveGroupRequestMember()
		m.MemberID = req.MemberID
		members = []kmsg.LeaveGroupRequestMember{m}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	for _, rm := range members {
		if rm.Reason != nil && *rm.Reason != "" {
			c.log.Debug("leave group", "group", req.Group, "member", rm.MemberID, "reason", *rm.Reason)
		}
	}
	e := c.withGroup(ctx, req.Group, false, func(g *group) {
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
		return resp
	}
	if req.Version < 3 {
		resp.ErrorCode = resp.Members[0].ErrorCode
		resp.Members = nil
	}
	return resp
}
