package broker

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups, versions 0–5.
//
// Every group this broker coordinates (all of them, on a single node), with
// its protocol type. v4+ report the state and filter by it (KIP-518,
// case-insensitive); v5 reports the group type and filters by it (KIP-848):
// all of Strata's groups are "classic". While a __consumer_offsets partition
// is still loading the answer is partial and carries
// COORDINATOR_LOAD_IN_PROGRESS, as Kafka's.
func init() { register(kmsg.ListGroups, 0, 5, handleListGroups) }

func handleListGroups(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if len(req.TypesFilter) > 0 {
		classic := false
		for _, t := range req.TypesFilter {
			classic = classic || strings.EqualFold(t, "classic")
		}
		if !classic {
			return resp, nil
		}
	}
	if c.b.groups.anyLoading() {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	for _, g := range c.b.groups.allGroups() {
		g.mu.Lock()
		state, ptype := g.state, g.protocolType
		g.mu.Unlock()
		if state == groupDead || !stateMatches(req.StatesFilter, state) {
			continue
		}
		sg := kmsg.NewListGroupsResponseGroup()
		sg.Group, sg.ProtocolType, sg.GroupState, sg.GroupType = g.id, ptype, state.String(), "classic"
		resp.Groups = append(resp.Groups, sg)
	}
	return resp, nil
}
