package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A group's membership as a GroupMetadataValue record: written when a
// generation is synced and when the group empties, read back at load.

// metadataValue is the group's GroupMetadataValue (Kafka's
// GroupMetadataManager.groupMetadataValue).
func (g *group) metadataValue() *kmsg.GroupMetadataValue {
	v := new(kmsg.GroupMetadataValue)
	v.Default()
	v.ProtocolType = g.mu.protocolType
	v.Generation = g.mu.generation
	if g.mu.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.mu.protocol)
	}
	if g.mu.leader != "" {
		v.Leader = kmsg.StringPtr(g.mu.leader)
	}
	v.CurrentStateTimestamp = g.mu.stateTime
	for _, id := range g.sortedMemberIDs() {
		m := g.mu.members[id]
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.InstanceID = m.id, m.instanceID
		vm.ClientID, vm.ClientHost = m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(g.mu.protocol)
		vm.Assignment = m.assignment
		v.Members = append(v.Members, vm)
	}
	return v
}

// persistMetadata appends the group's metadata record. Kafka writes it when
// a generation is synced (Stable) and when the group empties, so a restarted
// coordinator knows the members, their assignments and the generation.
// A failed write is logged: the in-memory group stays authoritative until
// the next write, and clients keep working.
func (g *group) persistMetadata() {
	rec := groupMetadataRecord(g.id, g.metadataValue())
	if err := g.c.appendRecords(g, []groupRecord{rec}); err != nil && !g.c.isClosed() {
		g.c.log.Error("cannot store group metadata", "group", g.id, "err", err)
	}
}

// restoreMetadata rebuilds members from a loaded GroupMetadataValue. Members
// come back Stable and get fresh session timers once the group is installed
// (startSessions), so clients that keep heartbeating never notice the
// restart or the move to a new coordinator; those that are gone expire.
func (g *group) restoreMetadata(v *kmsg.GroupMetadataValue) {
	g.mu.protocolType = v.ProtocolType
	g.mu.generation = v.Generation
	g.mu.protocol, g.mu.leader = "", ""
	if v.Protocol != nil {
		g.mu.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.mu.leader = *v.Leader
	}
	g.mu.members = map[string]*groupMember{}
	g.mu.static = map[string]string{}
	for _, vm := range v.Members {
		m := &groupMember{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.mu.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		if m.sessionTimeout <= 0 {
			m.sessionTimeout = g.c.opts.MinSessionTimeout
		}
		g.mu.members[m.id] = m
		if m.instanceID != nil {
			g.mu.static[*m.instanceID] = m.id
		}
	}
	g.mu.state, g.mu.stateTime = groupEmpty, v.CurrentStateTimestamp
	if len(g.mu.members) > 0 {
		g.mu.state = groupStable
	}
}

// startSessions arms every member's session timer (after a load).
func (g *group) startSessions() {
	for _, m := range g.mu.members {
		g.touch(m)
	}
}
