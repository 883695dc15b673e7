package group

import (
	"bytes"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The classic rebalance (Kafka's ClassicGroup and the rebalance half of its
// GroupCoordinator): a join phase in PreparingRebalance that waits for
// every member to rejoin (or for the rebalance timeout), a leader chosen
// and given every member's metadata, then a sync phase in
// CompletingRebalance that hands out the leader's assignments and makes
// the group Stable. Every function here runs with g.mu held.

// protocolsMatch: a joining member must speak the group's protocol type and
// support at least one protocol every current member supports.
func (g *group) protocolsMatch(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.mu.members) == 0 {
		return true
	}
	if protocolType != g.mu.protocolType {
		return false
	}
	for _, p := range protocols {
		if g.supportedByAll(p.Name, "") {
			return true
		}
	}
	return false
}

// supportedByAll reports whether every member except skip supports name.
func (g *group) supportedByAll(name, skip string) bool {
	for _, m := range g.mu.members {
		if m.id == skip {
			continue
		}
		found := false
		for _, p := range m.protocols {
			if p.Name == name {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Metadata, b[i].Metadata) {
			return false
		}
	}
	return true
}

func cloneProtocols(ps []kmsg.JoinGroupRequestProtocol) []kmsg.JoinGroupRequestProtocol {
	out := make([]kmsg.JoinGroupRequestProtocol, len(ps))
	for i, p := range ps {
		out[i] = kmsg.JoinGroupRequestProtocol{Name: p.Name, Metadata: append([]byte(nil), p.Metadata...)}
	}
	return out
}

// ---- JoinGroup ----

// joinRequest is what JoinGroup tells the group, versions flattened.
type joinRequest struct {
	version          int16
	memberID         string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
}

// join handles a JoinGroup. It returns either an immediate response or a
// channel the handler waits on until the rebalance answers.
func (g *group) join(r joinRequest) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	fail := func(e *kerr.Error) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.MemberID, resp.Generation = e.Code, r.memberID, -1
		return resp, nil
	}
	if g.mu.state == groupDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if !g.protocolsMatch(r.protocolType, r.protocols) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	if r.memberID == "" {
		if r.instanceID != nil {
			if oldID, ok := g.mu.static[*r.instanceID]; ok && g.mu.members[oldID] != nil {
				return g.replaceStatic(g.mu.members[oldID], r)
			}
			// A new static member joins at once: its instance id
			// already identifies it (KIP-345 skips KIP-394's round trip).
			m := &groupMember{id: newMemberID(*r.instanceID), instanceID: r.instanceID}
			g.mu.static[*r.instanceID] = m.id
			return nil, g.addMember(m, r)
		}
		prefix := r.clientID
		id := newMemberID(prefix)
		if r.version >= 4 {
			// KIP-394: hand out the id; the member must come back
			// with it within its session timeout.
			g.mu.pending[id] = g.afterFunc(r.sessionTimeout, func() { delete(g.mu.pending, id) })
			resp := kmsg.NewPtrJoinGroupResponse()
			resp.ErrorCode, resp.MemberID, resp.Generation = kerr.MemberIDRequired.Code, id, -1
			return resp, nil
		}
		return nil, g.addMember(&groupMember{id: id}, r)
	}
	if e := g.checkInstance(r.instanceID, r.memberID); e != nil {
		return fail(e)
	}
	if t, ok := g.mu.pending[r.memberID]; ok {
		t.Stop()
		delete(g.mu.pending, r.memberID)
		return nil, g.addMember(&groupMember{id: r.memberID}, r)
	}
	m := g.mu.members[r.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	switch g.mu.state {
	case groupCompletingRebalance:
		if sameProtocols(m.protocols, r.protocols) {
			// A retried join: answer with the generation being synced.
			return g.joinResponse(m), nil
		}
	case groupStable:
		if m.id != g.mu.leader && sameProtocols(m.protocols, r.protocols) {
			return g.joinResponse(m), nil
		}
	}
	return nil, g.updateMember(m, r)
}

func (g *group) applyJoin(m *groupMember, r joinRequest) {
	m.clientID, m.clientHost = r.clientID, r.clientHost
	m.sessionTimeout, m.rebalanceTimeout = r.sessionTimeout, r.rebalanceTimeout
	m.protocolType = r.protocolType
	m.protocols = cloneProtocols(r.protocols)
	if m.joinWait != nil {
		// An older JoinGroup from this member (a retry on a new
		// connection) is superseded.
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.MemberID, resp.Generation = kerr.RebalanceInProgress.Code, m.id, -1
		m.joinWait <- resp
	}
	m.joinWait = make(chan *kmsg.JoinGroupResponse, 1)
	g.stopSession(m)
}

func (g *group) addMember(m *groupMember, r joinRequest) chan *kmsg.JoinGroupResponse {
	g.applyJoin(m, r)
	if len(g.mu.members) == 0 {
		g.mu.protocolType = r.protocolType
	}
	g.mu.members[m.id] = m
	if g.mu.inInitialDelay {
		g.mu.joinedInDelay = true
	}
	ch := m.joinWait
	g.rebalance()
	return ch
}

func (g *group) updateMember(m *groupMember, r joinRequest) chan *kmsg.JoinGroupResponse {
	g.applyJoin(m, r)
	ch := m.joinWait
	g.rebalance()
	return ch
}

// replaceStatic: a static member came back with an empty member id. It gets
// a new id, the old one is fenced, and its assignment is kept. In a Stable
// group whose selected protocol would not change, no rebalance happens
// (KIP-345, Kafka's updateStaticMemberAndRebalance); a leader coming back
// that way gets the member list with SkipAssignment (KIP-814, v9+; older
// leaders run their assignor, and their SyncGroup in Stable only returns
// the stored assignment).
func (g *group) replaceStatic(old *groupMember, r joinRequest) (*kmsg.JoinGroupResponse, chan *kmsg.JoinGroupResponse) {
	m := &groupMember{id: newMemberID(*r.instanceID), instanceID: r.instanceID, assignment: old.assignment}
	g.fence(old)
	wasLeader := g.mu.leader == old.id
	g.stopSession(old)
	delete(g.mu.members, old.id)
	delete(g.mu.pendingSync, old.id)
	g.mu.static[*r.instanceID] = m.id
	if wasLeader {
		g.mu.leader = m.id
	}
	if g.mu.state != groupStable {
		return nil, g.addMember(m, r)
	}
	m.clientID, m.clientHost = r.clientID, r.clientHost
	m.sessionTimeout, m.rebalanceTimeout = r.sessionTimeout, r.rebalanceTimeout
	m.protocolType, m.protocols = r.protocolType, cloneProtocols(r.protocols)
	g.mu.members[m.id] = m
	if g.selectProtocol() != g.mu.protocol {
		delete(g.mu.members, m.id)
		return nil, g.addMember(m, r)
	}
	g.persistMetadata()
	g.touch(m)
	resp := g.joinResponse(m)
	resp.SkipAssignment = wasLeader
	return resp, nil
}

// joinResponse describes the current generation to m; the leader also gets
// every member's metadata for the chosen protocol.
func (g *group) joinResponse(m *groupMember) *kmsg.JoinGroupResponse {
	resp := kmsg.NewPtrJoinGroupResponse()
	resp.Generation = g.mu.generation
	resp.ProtocolType = kmsg.StringPtr(g.mu.protocolType)
	resp.Protocol = kmsg.StringPtr(g.mu.protocol)
	resp.LeaderID = g.mu.leader
	resp.MemberID = m.id
	if m.id == g.mu.leader {
		for _, id := range g.sortedMemberIDs() {
			o := g.mu.members[id]
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.InstanceID = o.id, o.instanceID
			rm.ProtocolMetadata = o.metadataFor(g.mu.protocol)
			resp.Members = append(resp.Members, rm)
		}
	}
	return resp
}

func (m *groupMember) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

func (g *group) sortedMemberIDs() []string {
	ids := make([]string, 0, len(g.mu.members))
	for id := range g.mu.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.mu.members {
		if m.rebalanceTimeout > d {
			d = m.rebalanceTimeout
		}
	}
	return d
}

// rebalance moves the group to PreparingRebalance (if not already there)
// and completes the join phase if every member has rejoined.
func (g *group) rebalance() {
	if g.mu.state != groupPreparingRebalance {
		g.prepareRebalance()
	}
	g.maybeCompleteJoin()
}

func (g *group) prepareRebalance() {
	if g.mu.state == groupCompletingRebalance {
		// Members parked in SyncGroup learn the generation is over.
		for _, m := range g.mu.members {
			if m.syncWait != nil {
				resp := kmsg.NewPtrSyncGroupResponse()
				resp.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncWait <- resp
				m.syncWait = nil
				g.touch(m)
			}
		}
	}
	wasEmpty := g.mu.state == groupEmpty
	g.mu.pendingSync = nil
	g.mu.timerSeq++
	if g.mu.syncTimer != nil {
		g.mu.syncTimer.Stop()
	}
	if g.mu.joinTimer != nil {
		g.mu.joinTimer.Stop()
	}
	g.setState(groupPreparingRebalance)
	seq := g.mu.timerSeq
	if wasEmpty && g.c.opts.InitialRebalanceDelay > 0 {
		g.mu.inInitialDelay, g.mu.joinedInDelay = true, false
		g.mu.delayBudgetLeft = g.maxRebalanceTimeout() - g.c.opts.InitialRebalanceDelay
		g.armInitialDelay(seq, g.c.opts.InitialRebalanceDelay)
		return
	}
	g.mu.inInitialDelay = false
	g.mu.joinTimer = g.afterFunc(g.maxRebalanceTimeout(), func() {
		if g.mu.timerSeq == seq && g.mu.state == groupPreparingRebalance {
			g.completeJoin()
		}
	})
}

// armInitialDelay is Kafka's InitialDelayedJoin: wait delay; if members kept
// arriving and rebalance time is left, wait again, else complete the join.
func (g *group) armInitialDelay(seq uint64, delay time.Duration) {
	g.mu.joinTimer = g.afterFunc(delay, func() {
		if g.mu.timerSeq != seq || g.mu.state != groupPreparingRebalance {
			return
		}
		if g.mu.joinedInDelay && g.mu.delayBudgetLeft > 0 {
			next := min(g.c.opts.InitialRebalanceDelay, g.mu.delayBudgetLeft)
			g.mu.delayBudgetLeft -= next
			g.mu.joinedInDelay = false
			g.armInitialDelay(seq, next)
			return
		}
		g.mu.inInitialDelay = false
		g.completeJoin()
	})
}

func (g *group) maybeCompleteJoin() {
	if g.mu.state != groupPreparingRebalance || g.mu.inInitialDelay {
		return
	}
	for _, m := range g.mu.members {
		if m.joinWait == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: dynamic members that did not rejoin are
// removed (static ones keep their place, KIP-345), the generation advances,
// a protocol is chosen, and every waiting member gets its JoinGroup answer.
func (g *group) completeJoin() {
	g.mu.timerSeq++
	if g.mu.joinTimer != nil {
		g.mu.joinTimer.Stop()
	}
	g.mu.inInitialDelay = false
	for _, m := range g.mu.members {
		if m.joinWait == nil && m.instanceID == nil {
			g.removeMember(m)
		}
	}
	joined := 0
	for _, m := range g.mu.members {
		if m.joinWait != nil {
			joined++
		}
	}
	g.mu.generation++
	if joined == 0 {
		// Only absent static members (or nobody) remain: the group
		// empties; absent static members are dropped with it.
		for _, m := range g.mu.members {
			g.removeMember(m)
		}
		g.mu.protocol, g.mu.leader = "", ""
		g.setState(groupEmpty)
		g.persistMetadata()
		return
	}
	g.mu.protocol = g.selectProtocol()
	if l := g.mu.members[g.mu.leader]; l == nil || l.joinWait == nil {
		g.mu.leader = ""
		for _, id := range g.sortedMemberIDs() {
			if g.mu.members[id].joinWait != nil {
				g.mu.leader = id
				break
			}
		}
	}
	g.setState(groupCompletingRebalance)
	g.mu.pendingSync = map[string]bool{}
	for _, m := range g.mu.members {
		if m.joinWait == nil {
			continue
		}
		g.mu.pendingSync[m.id] = true
		m.joinWait <- g.joinResponse(m)
		m.joinWait = nil
		g.touch(m)
	}
	// KAFKA-13128: members that never SyncGroup are removed after the
	// rebalance timeout, so one stuck member cannot hold the group.
	seq := g.mu.timerSeq
	g.mu.syncTimer = g.afterFunc(g.maxRebalanceTimeout(), func() {
		if g.mu.timerSeq != seq || g.mu.state != groupCompletingRebalance || len(g.mu.pendingSync) == 0 {
			return
		}
		for id := range g.mu.pendingSync {
			if m := g.mu.members[id]; m != nil {
				g.removeMember(m)
			}
		}
		g.rebalance()
	})
}

// selectProtocol is Kafka's vote: among protocols every member supports,
// each member votes for the first one in its own preference order; most
// votes wins (ties broken by name, for determinism).
func (g *group) selectProtocol() string {
	votes := map[string]int{}
	for _, m := range g.mu.members {
		for _, p := range m.protocols {
			if g.supportedByAll(p.Name, "") {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", -1
	for name, v := range votes {
		if v > bestVotes || (v == bestVotes && name < best) {
			best, bestVotes = name, v
		}
	}
	return best
}

// ---- SyncGroup ----

type syncRequest struct {
	memberID     string
	instanceID   *string
	generation   int32
	protocolType *string
	protocol     *string
	assignments  []kmsg.SyncGroupRequestGroupAssignment
}

func (g *group) sync(r syncRequest) (*kmsg.SyncGroupResponse, chan *kmsg.SyncGroupResponse) {
	resp := kmsg.NewPtrSyncGroupResponse()
	fail := func(e *kerr.Error) (*kmsg.SyncGroupResponse, chan *kmsg.SyncGroupResponse) {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	if g.mu.state == groupDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if e := g.checkInstance(r.instanceID, r.memberID); e != nil {
		return fail(e)
	}
	m := g.mu.members[r.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	if r.generation != g.mu.generation {
		return fail(kerr.IllegalGeneration)
	}
	if (r.protocolType != nil && *r.protocolType != g.mu.protocolType) || (r.protocol != nil && *r.protocol != g.mu.protocol) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	switch g.mu.state {
	case groupPreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case groupStable:
		g.touch(m)
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.mu.protocolType), kmsg.StringPtr(g.mu.protocol)
		resp.MemberAssignment = g.assignmentOrEmpty(m.assignment)
		return resp, nil
	case groupCompletingRebalance:
	default:
		return fail(kerr.UnknownMemberID)
	}
	delete(g.mu.pendingSync, m.id)
	if m.syncWait != nil {
		old := kmsg.NewPtrSyncGroupResponse()
		old.ErrorCode = kerr.RebalanceInProgress.Code
		m.syncWait <- old
	}
	m.syncWait = make(chan *kmsg.SyncGroupResponse, 1)
	ch := m.syncWait
	g.stopSession(m)
	if m.id == g.mu.leader {
		g.completeSync(r.assignments)
	}
	return nil, ch
}

// emptyConsumerAssignment is an encoded ConsumerMemberAssignment with no
// partitions: a consumer-protocol member the leader left out must still get
// something it can decode.
var emptyConsumerAssignment = func() []byte {
	a := kmsg.NewConsumerMemberAssignment()
	return a.AppendTo(nil)
}()

func (g *group) assignmentOrEmpty(a []byte) []byte {
	if len(a) == 0 && g.mu.protocolType == "consumer" {
		return emptyConsumerAssignment
	}
	return a
}

// completeSync stores the leader's assignments, persists the group and
// answers every member waiting in SyncGroup: the group is Stable.
func (g *group) completeSync(assignments []kmsg.SyncGroupRequestGroupAssignment) {
	for _, m := range g.mu.members {
		m.assignment = nil
	}
	for _, a := range assignments {
		if m := g.mu.members[a.MemberID]; m != nil {
			m.assignment = append([]byte(nil), a.MemberAssignment...)
		}
	}
	g.mu.timerSeq++
	if g.mu.syncTimer != nil {
		g.mu.syncTimer.Stop()
	}
	g.setState(groupStable)
	g.persistMetadata()
	for _, m := range g.mu.members {
		if m.syncWait == nil {
			continue
		}
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.mu.protocolType), kmsg.StringPtr(g.mu.protocol)
		resp.MemberAssignment = g.assignmentOrEmpty(m.assignment)
		m.syncWait <- resp
		m.syncWait = nil
		g.touch(m)
	}
}
