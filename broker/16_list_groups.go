package broker

import "github.com/twmb/franz-go/pkg/kmsg"

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
	return c.b.groups.ListGroups(c.b.ctx, kreq.(*kmsg.ListGroupsRequest)), nil
}
