package group

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// PartitionFor is FindCoordinator's group part: the __consumer_offsets
// partition holding groupID's records, creating the topic on first need as
// Kafka does. The group's coordinator is that partition's leader. The
// answer does not wait for loading (group requests report
// COORDINATOR_LOAD_IN_PROGRESS instead).
func (c *Coordinator) PartitionFor(ctx context.Context, groupID string) (int32, *kerr.Error) {
	n, err := c.host.OffsetsPartitions(ctx)
	if err != nil || n <= 0 {
		if err != nil && ctx.Err() == nil {
			c.log.Error("cannot create "+OffsetsTopic, "err", err)
		}
		return -1, kerr.CoordinatorNotAvailable
	}
	return partitionFor(groupID, n), nil
}

// groupAuthorizedOperations is READ | DELETE | DESCRIBE (ACL operation
// codes 3, 6, 8) — what a group resource supports.
const groupAuthorizedOperations = 1<<3 | 1<<6 | 1<<8

// DescribeGroups answers a DescribeGroups (v0–v6). As Kafka's
// GroupMetadata.summary, the protocol and each member's metadata and
// assignment are given only while the group is Stable. An unknown group is
// reported Dead, with GROUP_ID_NOT_FOUND from v6 (KIP-1043). With no ACLs
// yet every group operation is authorized (v3+).
func (c *Coordinator) DescribeGroups(ctx context.Context, req *kmsg.DescribeGroupsRequest) *kmsg.DescribeGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = id
		sg.State = groupDead.String()
		if req.IncludeAuthorizedOperations {
			sg.AuthorizedOperations = groupAuthorizedOperations
		}
		if id == "" {
			sg.ErrorCode = kerr.InvalidGroupID.Code
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		e := c.withGroup(ctx, id, false, func(g *group) {
			if g == nil || g.mu.state == groupDead {
				if req.Version >= 6 {
					sg.ErrorCode = kerr.GroupIDNotFound.Code
					msg := "group " + id + " not found"
					sg.ErrorMessage = &msg
				}
				return
			}
			sg.State = g.mu.state.String()
			sg.ProtocolType = g.mu.protocolType
			stable := g.mu.state == groupStable
			if stable {
				sg.Protocol = g.mu.protocol
			}
			for _, mid := range g.sortedMemberIDs() {
				m := g.mu.members[mid]
				sm := kmsg.NewDescribeGroupsResponseGroupMember()
				sm.MemberID, sm.InstanceID, sm.ClientID, sm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if stable {
					sm.ProtocolMetadata = m.metadataFor(g.mu.protocol)
					sm.MemberAssignment = g.assignmentOrEmpty(m.assignment)
				}
				sg.Members = append(sg.Members, sm)
			}
		})
		if e != nil {
			sg.ErrorCode = e.Code
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// ListGroups answers a ListGroups (v0–v5): every group this broker
// coordinates with its protocol type, state (v4+, KIP-518, filtered
// case-insensitively) and type (v5, KIP-848: all classic). While a partition
// is still loading the answer is partial and carries
// COORDINATOR_LOAD_IN_PROGRESS, as Kafka's.
func (c *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) *kmsg.ListGroupsResponse {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if len(req.TypesFilter) > 0 {
		classic := false
		for _, t := range req.TypesFilter {
			classic = classic || strings.EqualFold(t, "classic")
		}
		if !classic {
			return resp
		}
	}
	if c.anyLoading() {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	for _, g := range c.allGroups() {
		g.mu.Lock()
		state, ptype := g.mu.state, g.mu.protocolType
		g.mu.Unlock()
		if state == groupDead || !stateMatches(req.StatesFilter, state) {
			continue
		}
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group, sg.ProtocolType, sg.GroupState, sg.GroupType = g.id, ptype, state.String(), "classic"
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// stateMatches reports whether a group's state is in a ListGroups filter
// (case-insensitive, as Kafka's).
func stateMatches(filter []string, s groupState) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if strings.EqualFold(f, s.String()) {
			return true
		}
	}
	return false
}

// DeleteGroups answers a DeleteGroups (v0–v3, KIP-229): groups with no
// members get tombstones for every committed offset and for their metadata,
// then are gone. NON_EMPTY_GROUP for a group with members,
// GROUP_ID_NOT_FOUND for an unknown one; v3 adds an error message.
func (c *Coordinator) DeleteGroups(ctx context.Context, req *kmsg.DeleteGroupsRequest) *kmsg.DeleteGroupsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = id
		code := errNone
		if id == "" {
			code = kerr.InvalidGroupID
		} else if e := c.withGroup(ctx, id, false, func(g *group) {
			switch {
			case g == nil || g.mu.state == groupDead:
				code = kerr.GroupIDNotFound
			case g.mu.state != groupEmpty:
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
		if code != errNone && req.Version >= 3 {
			msg := code.Message
			sg.ErrorMessage = &msg
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}
