package broker

import (
	"fmt"

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
	resp, err := c.b.groups.SyncGroup(c.b.ctx, kreq.(*kmsg.SyncGroupRequest))
	if err != nil {
		return nil, fmt.Errorf("%w: broker closing", errCloseConn)
	}
	return resp, nil
}
