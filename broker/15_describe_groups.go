package broker

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups, versions 0–6.
//
// State, protocol type, and members (id, client id, host; instance id v4+,
// KIP-345). As in Kafka's GroupMetadata.summary, the protocol and each
// member's metadata and assignment are given only while the group is Stable.
// An unknown group is reported Dead; v6 adds GROUP_ID_NOT_FOUND for it
// (KIP-1043). v3+ reports authorized operations when asked; with no ACLs
// yet every group operation is allowed.
func init() { register(kmsg.DescribeGroups, 0, 6, handleDescribeGroups) }

// groupAuthorizedOperations is READ | DELETE | DESCRIBE (ACL operation
// codes 3, 6, 8) — what a group resource supports.
const groupAuthorizedOperations = 1<<3 | 1<<6 | 1<<8

func handleDescribeGroups(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeGroupsRequest)
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
		e := c.b.groups.withGroup(id, false, func(g *group) {
			if g == nil || g.state == groupDead {
				if h.version >= 6 {
					sg.ErrorCode = kerr.GroupIDNotFound.Code
					msg := "group " + id + " not found"
					sg.ErrorMessage = &msg
				}
				return
			}
			sg.State = g.state.String()
			sg.ProtocolType = g.protocolType
			stable := g.state == groupStable
			if stable {
				sg.Protocol = g.protocol
			}
			for _, mid := range g.sortedMemberIDs() {
				m := g.members[mid]
				sm := kmsg.NewDescribeGroupsResponseGroupMember()
				sm.MemberID, sm.InstanceID, sm.ClientID, sm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
				if stable {
					sm.ProtocolMetadata = m.metadataFor(g.protocol)
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
	return resp, nil
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
