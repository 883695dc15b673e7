package broker

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
	v.ProtocolType = g.protocolType
	v.Generation = g.generation
	if g.protocol != "" {
		v.Protocol = kmsg.StringPtr(g.protocol)
	}
	if g.leader != "" {
		v.Leader = kmsg.StringPtr(g.leader)
	}
	v.CurrentStateTimestamp = g.stateTime
	for _, id := range g.sortedMemberIDs() {
		m := g.members[id]
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID, vm.InstanceID = m.id, m.instanceID
		vm.ClientID, vm.ClientHost = m.clientID, m.clientHost
		vm.RebalanceTimeoutMillis = int32(m.rebalanceTimeout / time.Millisecond)
		vm.SessionTimeoutMillis = int32(m.sessionTimeout / time.Millisecond)
		vm.Subscription = m.metadataFor(g.protocol)
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
	if err := g.gc.appendGroupRecords(g.partition, []groupRecord{rec}); err != nil && !g.gc.isClosed() {
		g.gc.b.log.Error("cannot store group metadata", "group", g.id, "err", err)
	}
}

// restoreMetadata rebuilds members from a loaded GroupMetadataValue. Members
// come back Stable with fresh session timers, so clients that keep
// heartbeating never notice the restart; those that are gone expire.
func (g *group) restoreMetadata(v *kmsg.GroupMetadataValue) {
	g.protocolType = v.ProtocolType
	g.generation = v.Generation
	g.protocol, g.leader = "", ""
	if v.Protocol != nil {
		g.protocol = *v.Protocol
	}
	if v.Leader != nil {
		g.leader = *v.Leader
	}
	g.members = map[string]*groupMember{}
	g.static = map[string]string{}
	for _, vm := range v.Members {
		m := &groupMember{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			sessionTimeout:   time.Duration(vm.SessionTimeoutMillis) * time.Millisecond,
			rebalanceTimeout: time.Duration(vm.RebalanceTimeoutMillis) * time.Millisecond,
			protocolType:     v.ProtocolType,
			protocols:        []kmsg.JoinGroupRequestProtocol{{Name: g.protocol, Metadata: vm.Subscription}},
			assignment:       vm.Assignment,
		}
		if m.rebalanceTimeout <= 0 {
			m.rebalanceTimeout = m.sessionTimeout
		}
		if m.sessionTimeout <= 0 {
			m.sessionTimeout = g.gc.minSession
		}
		g.members[m.id] = m
		if m.instanceID != nil {
			g.static[*m.instanceID] = m.id
		}
	}
	g.state, g.stateTime = groupEmpty, v.CurrentStateTimestamp
	if len(g.members) > 0 {
		g.state = groupStable
		for _, m := range g.members {
			g.touch(m)
		}
	}
}
