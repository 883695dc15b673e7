package broker

import (
	"fmt"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup, versions 0–9 (classic rebalance protocol).
//
// The request waits until the group's join phase completes: every known
// member has rejoined, or the rebalance timeout (the largest of the members'
// rebalance.timeout.ms; v0 has none and uses session.timeout.ms) ran out, or,
// for the first rebalance of an Empty group, group.initial.rebalance.delay.ms
// passed with no new member arriving. The leader's answer carries every
// member's metadata for the chosen protocol; it assigns partitions
// client-side and sends them in SyncGroup. State machine: broker/group.
//
// session.timeout.ms must lie within group.min/max.session.timeout.ms
// (INVALID_SESSION_TIMEOUT). v4+: a new dynamic member first gets
// MEMBER_ID_REQUIRED with its id and must rejoin with it (KIP-394). v5+:
// group.instance.id makes a static member (KIP-345): it joins without that
// round trip, and rejoining with the same instance id replaces (fences) the
// old member without a rebalance if nothing changed. v7+ names the protocol
// type and protocol in the answer; v8+ carries a reason (logged); v9 tells a
// static leader that rejoined without a rebalance to skip assignment
// (KIP-814).
func init() { register(kmsg.JoinGroup, 0, 9, handleJoinGroup) }

func handleJoinGroup(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	resp, err := c.b.groups.JoinGroup(c.b.ctx, kreq.(*kmsg.JoinGroupRequest), h.clientID, clientHost(c))
	if err != nil {
		return nil, fmt.Errorf("%w: broker closing", errCloseConn)
	}
	return resp, nil
}

// clientHost is Kafka's client host string: the peer address with a slash.
func clientHost(c *conn) string {
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		host = c.remote
	}
	return "/" + host
}
