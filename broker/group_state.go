package broker

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupState is a classic group's state, named as Kafka's GroupState so
// DescribeGroups and ListGroups report what Kafka tools expect.
type groupState int8

const (
	groupEmpty groupState = iota
	groupPreparingRebalance
	groupCompletingRebalance
	groupStable
	groupDead
)

func (s groupState) String() string {
	switch s {
	case groupEmpty:
		return "Empty"
	case groupPreparingRebalance:
		return "PreparingRebalance"
	case groupCompletingRebalance:
		return "CompletingRebalance"
	case groupStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// groupMember is one member of a classic group.
type groupMember struct {
	id               string
	instanceID       *string // static membership (KIP-345)
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocolType     string
	protocols        []kmsg.JoinGroupRequestProtocol
	assignment       []byte
	joinWait         chan *kmsg.JoinGroupResponse // set while its JoinGroup waits for the rebalance
	syncWait         chan *kmsg.SyncGroupResponse // set while its SyncGroup waits for the leader
	session          *time.Timer
}

// group is one consumer group: the classic rebalance state machine
// (Kafka's ClassicGroup + GroupCoordinator) and its committed offsets. All
// fields are guarded by mu; timers take mu and check they are still current
// before acting, since a fired timer cannot be retracted.
type group struct {
	gc        *groupCoordinator
	id        string
	partition int32 // __consumer_offsets partition holding its records

	mu           sync.Mutex
	state        groupState
	stateTime    int64 // ms, when state last changed (GroupMetadataValue.CurrentStateTimestamp)
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*groupMember
	static       map[string]string      // group.instance.id → member id
	pending      map[string]*time.Timer // KIP-394: member ids handed out with MEMBER_ID_REQUIRED
	pendingSync  map[string]bool        // members that must still SyncGroup this generation
	timerSeq     uint64                 // bumps to invalidate the join/sync timers
	joinTimer    *time.Timer
	syncTimer    *time.Timer
	// initial rebalance delay (group.initial.rebalance.delay.ms): while
	// set, a rebalance out of Empty waits for more members before it
	// completes, as Kafka's InitialDelayedJoin.
	inInitialDelay  bool
	joinedInDelay   bool
	delayBudgetLeft time.Duration

	offsets map[string]map[int32]committedOffset
}

func newGroup(gc *groupCoordinator, id string, partition int32) *group {
	return &group{
		gc: gc, id: id, partition: partition,
		state:     groupEmpty,
		stateTime: gc.b.now().UnixMilli(),
		members:   map[string]*groupMember{},
		static:    map[string]string{},
		pending:   map[string]*time.Timer{},
		offsets:   map[string]map[int32]committedOffset{},
	}
}

func (g *group) setState(s groupState) {
	g.state = s
	g.stateTime = g.gc.b.now().UnixMilli()
}

func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	u := hex.EncodeToString(b[:])
	return prefix + "-" + u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
}

// afterFunc runs fn with g.mu held after d, unless the group died or the
// coordinator closed meanwhile.
func (g *group) afterFunc(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state == groupDead || g.gc.isClosed() {
			return
		}
		fn()
	})
}

func (gc *groupCoordinator) isClosed() bool {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.mu.closed
}

func (g *group) stopTimers() {
	g.timerSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	if g.syncTimer != nil {
		g.syncTimer.Stop()
	}
	for _, m := range g.members {
		if m.session != nil {
			m.session.Stop()
		}
	}
	for _, t := range g.pending {
		t.Stop()
	}
}

// ---- session timeouts ----

// touch restarts a member's session timer (a heartbeat, a commit, or a
// JoinGroup/SyncGroup answer). A member waiting in JoinGroup or SyncGroup has
// no timer: Kafka keeps such members alive until the rebalance answers them.
func (g *group) touch(m *groupMember) {
	if m.session != nil {
		m.session.Stop()
	}
	if m.joinWait != nil || m.syncWait != nil {
		m.session = nil
		return
	}
	m.session = g.afterFunc(m.sessionTimeout, func() {
		if g.members[m.id] != m || m.joinWait != nil || m.syncWait != nil {
			return
		}
		g.gc.b.log.Info("group member session expired", "group", g.id, "member", m.id)
		g.removeMember(m)
		g.rebalance()
	})
}

func (g *group) stopSession(m *groupMember) {
	if m.session != nil {
		m.session.Stop()
		m.session = nil
	}
}

// removeMember drops m, answering any request it has parked with
// UNKNOWN_MEMBER_ID. It does not start a rebalance.
func (g *group) removeMember(m *groupMember) {
	g.stopSession(m)
	delete(g.members, m.id)
	delete(g.pendingSync, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	if m.joinWait != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.MemberID, resp.Generation = kerr.UnknownMemberID.Code, m.id, -1
		m.joinWait <- resp
		m.joinWait = nil
	}
	if m.syncWait != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.UnknownMemberID.Code
		m.syncWait <- resp
		m.syncWait = nil
	}
}

// fence answers m's parked requests with FENCED_INSTANCE_ID: a newer
// instance with the same group.instance.id replaced it (KIP-345).
func (g *group) fence(m *groupMember) {
	if m.joinWait != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.MemberID, resp.Generation = kerr.FencedInstanceID.Code, m.id, -1
		m.joinWait <- resp
		m.joinWait = nil
	}
	if m.syncWait != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = kerr.FencedInstanceID.Code
		m.syncWait <- resp
		m.syncWait = nil
	}
}

// ---- validation shared by the member requests ----

// checkInstance is Kafka's static-member check: an instance id must map to
// the member id given, else FENCED_INSTANCE_ID (or UNKNOWN_MEMBER_ID when
// the instance is not in the group).
func (g *group) checkInstance(instanceID *string, memberID string) *kerr.Error {
	if instanceID == nil {
		return nil
	}
	known, ok := g.static[*instanceID]
	if !ok {
		return kerr.UnknownMemberID
	}
	if known != memberID {
		return kerr.FencedInstanceID
	}
	return nil
}

// protocolsMatch: a joining member must speak the group's protocol type and
// support at least one protocol every current member supports.
func (g *group) protocolsMatch(protocolType string, protocols []kmsg.JoinGroupRequestProtocol) bool {
	if len(g.members) == 0 {
		return true
	}
	if protocolType != g.protocolType {
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
	for _, m := range g.members {
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
	if g.state == groupDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if !g.protocolsMatch(r.protocolType, r.protocols) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	if r.memberID == "" {
		if r.instanceID != nil {
			if oldID, ok := g.static[*r.instanceID]; ok && g.members[oldID] != nil {
				return g.replaceStatic(g.members[oldID], r)
			}
			// A new static member joins at once: its instance id
			// already identifies it (KIP-345 skips KIP-394's round trip).
			m := &groupMember{id: newMemberID(*r.instanceID), instanceID: r.instanceID}
			g.static[*r.instanceID] = m.id
			return nil, g.addMember(m, r)
		}
		prefix := r.clientID
		id := newMemberID(prefix)
		if r.version >= 4 {
			// KIP-394: hand out the id; the member must come back
			// with it within its session timeout.
			g.pending[id] = g.afterFunc(r.sessionTimeout, func() { delete(g.pending, id) })
			resp := kmsg.NewPtrJoinGroupResponse()
			resp.ErrorCode, resp.MemberID, resp.Generation = kerr.MemberIDRequired.Code, id, -1
			return resp, nil
		}
		return nil, g.addMember(&groupMember{id: id}, r)
	}
	if e := g.checkInstance(r.instanceID, r.memberID); e != nil {
		return fail(e)
	}
	if t, ok := g.pending[r.memberID]; ok {
		t.Stop()
		delete(g.pending, r.memberID)
		return nil, g.addMember(&groupMember{id: r.memberID}, r)
	}
	m := g.members[r.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	switch g.state {
	case groupCompletingRebalance:
		if sameProtocols(m.protocols, r.protocols) {
			// A retried join: answer with the generation being synced.
			return g.joinResponse(m), nil
		}
	case groupStable:
		if m.id != g.leader && sameProtocols(m.protocols, r.protocols) {
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
	if len(g.members) == 0 {
		g.protocolType = r.protocolType
	}
	g.members[m.id] = m
	if g.inInitialDelay {
		g.joinedInDelay = true
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
	wasLeader := g.leader == old.id
	g.stopSession(old)
	delete(g.members, old.id)
	delete(g.pendingSync, old.id)
	g.static[*r.instanceID] = m.id
	if wasLeader {
		g.leader = m.id
	}
	if g.state != groupStable {
		return nil, g.addMember(m, r)
	}
	m.clientID, m.clientHost = r.clientID, r.clientHost
	m.sessionTimeout, m.rebalanceTimeout = r.sessionTimeout, r.rebalanceTimeout
	m.protocolType, m.protocols = r.protocolType, cloneProtocols(r.protocols)
	g.members[m.id] = m
	if g.selectProtocol() != g.protocol {
		delete(g.members, m.id)
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
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if m.id == g.leader {
		for _, id := range g.sortedMemberIDs() {
			o := g.members[id]
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.InstanceID = o.id, o.instanceID
			rm.ProtocolMetadata = o.metadataFor(g.protocol)
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
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		if m.rebalanceTimeout > d {
			d = m.rebalanceTimeout
		}
	}
	return d
}

// rebalance moves the group to PreparingRebalance (if not already there)
// and completes the join phase if every member has rejoined.
func (g *group) rebalance() {
	if g.state != groupPreparingRebalance {
		g.prepareRebalance()
	}
	g.maybeCompleteJoin()
}

func (g *group) prepareRebalance() {
	if g.state == groupCompletingRebalance {
		// Members parked in SyncGroup learn the generation is over.
		for _, m := range g.members {
			if m.syncWait != nil {
				resp := kmsg.NewPtrSyncGroupResponse()
				resp.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncWait <- resp
				m.syncWait = nil
				g.touch(m)
			}
		}
	}
	wasEmpty := g.state == groupEmpty
	g.pendingSync = nil
	g.timerSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
	}
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	g.setState(groupPreparingRebalance)
	seq := g.timerSeq
	if wasEmpty && g.gc.initialDelay > 0 {
		g.inInitialDelay, g.joinedInDelay = true, false
		g.delayBudgetLeft = g.maxRebalanceTimeout() - g.gc.initialDelay
		g.armInitialDelay(seq, g.gc.initialDelay)
		return
	}
	g.inInitialDelay = false
	g.joinTimer = g.afterFunc(g.maxRebalanceTimeout(), func() {
		if g.timerSeq == seq && g.state == groupPreparingRebalance {
			g.completeJoin()
		}
	})
}

// armInitialDelay is Kafka's InitialDelayedJoin: wait delay; if members kept
// arriving and rebalance time is left, wait again, else complete the join.
func (g *group) armInitialDelay(seq uint64, delay time.Duration) {
	g.joinTimer = g.afterFunc(delay, func() {
		if g.timerSeq != seq || g.state != groupPreparingRebalance {
			return
		}
		if g.joinedInDelay && g.delayBudgetLeft > 0 {
			next := min(g.gc.initialDelay, g.delayBudgetLeft)
			g.delayBudgetLeft -= next
			g.joinedInDelay = false
			g.armInitialDelay(seq, next)
			return
		}
		g.inInitialDelay = false
		g.completeJoin()
	})
}

func (g *group) maybeCompleteJoin() {
	if g.state != groupPreparingRebalance || g.inInitialDelay {
		return
	}
	for _, m := range g.members {
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
	g.timerSeq++
	if g.joinTimer != nil {
		g.joinTimer.Stop()
	}
	g.inInitialDelay = false
	for _, m := range g.members {
		if m.joinWait == nil && m.instanceID == nil {
			g.removeMember(m)
		}
	}
	joined := 0
	for _, m := range g.members {
		if m.joinWait != nil {
			joined++
		}
	}
	g.generation++
	if joined == 0 {
		// Only absent static members (or nobody) remain: the group
		// empties; absent static members are dropped with it.
		for _, m := range g.members {
			g.removeMember(m)
		}
		g.protocol, g.leader = "", ""
		g.setState(groupEmpty)
		g.persistMetadata()
		return
	}
	g.protocol = g.selectProtocol()
	if l := g.members[g.leader]; l == nil || l.joinWait == nil {
		g.leader = ""
		for _, id := range g.sortedMemberIDs() {
			if g.members[id].joinWait != nil {
				g.leader = id
				break
			}
		}
	}
	g.setState(groupCompletingRebalance)
	g.pendingSync = map[string]bool{}
	for _, m := range g.members {
		if m.joinWait == nil {
			continue
		}
		g.pendingSync[m.id] = true
		m.joinWait <- g.joinResponse(m)
		m.joinWait = nil
		g.touch(m)
	}
	// KAFKA-13128: members that never SyncGroup are removed after the
	// rebalance timeout, so one stuck member cannot hold the group.
	seq := g.timerSeq
	g.syncTimer = g.afterFunc(g.maxRebalanceTimeout(), func() {
		if g.timerSeq != seq || g.state != groupCompletingRebalance || len(g.pendingSync) == 0 {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
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
	for _, m := range g.members {
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
	if g.state == groupDead {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if e := g.checkInstance(r.instanceID, r.memberID); e != nil {
		return fail(e)
	}
	m := g.members[r.memberID]
	if m == nil {
		return fail(kerr.UnknownMemberID)
	}
	if r.generation != g.generation {
		return fail(kerr.IllegalGeneration)
	}
	if (r.protocolType != nil && *r.protocolType != g.protocolType) || (r.protocol != nil && *r.protocol != g.protocol) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	switch g.state {
	case groupPreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case groupStable:
		g.touch(m)
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = g.assignmentOrEmpty(m.assignment)
		return resp, nil
	case groupCompletingRebalance:
	default:
		return fail(kerr.UnknownMemberID)
	}
	delete(g.pendingSync, m.id)
	if m.syncWait != nil {
		old := kmsg.NewPtrSyncGroupResponse()
		old.ErrorCode = kerr.RebalanceInProgress.Code
		m.syncWait <- old
	}
	m.syncWait = make(chan *kmsg.SyncGroupResponse, 1)
	ch := m.syncWait
	g.stopSession(m)
	if m.id == g.leader {
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
	if len(a) == 0 && g.protocolType == "consumer" {
		return emptyConsumerAssignment
	}
	return a
}

// completeSync stores the leader's assignments, persists the group and
// answers every member waiting in SyncGroup: the group is Stable.
func (g *group) completeSync(assignments []kmsg.SyncGroupRequestGroupAssignment) {
	for _, m := range g.members {
		m.assignment = nil
	}
	for _, a := range assignments {
		if m := g.members[a.MemberID]; m != nil {
			m.assignment = append([]byte(nil), a.MemberAssignment...)
		}
	}
	g.timerSeq++
	if g.syncTimer != nil {
		g.syncTimer.Stop()
	}
	g.setState(groupStable)
	g.persistMetadata()
	for _, m := range g.members {
		if m.syncWait == nil {
			continue
		}
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = g.assignmentOrEmpty(m.assignment)
		m.syncWait <- resp
		m.syncWait = nil
		g.touch(m)
	}
}

// ---- Heartbeat ----

func (g *group) heartbeat(memberID string, instanceID *string, generation int32) *kerr.Error {
	if g.state == groupDead {
		return kerr.CoordinatorNotAvailable
	}
	if e := g.checkInstance(instanceID, memberID); e != nil {
		return e
	}
	m := g.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if generation != g.generation {
		return kerr.IllegalGeneration
	}
	switch g.state {
	case groupPreparingRebalance:
		g.touch(m)
		return kerr.RebalanceInProgress
	case groupCompletingRebalance, groupStable:
		g.touch(m)
		return errNone
	default:
		return kerr.UnknownMemberID
	}
}

// ---- LeaveGroup ----

// leave removes one member (by member id, or by instance id for static
// members, KIP-345) and starts a rebalance. The caller batches (v3+).
func (g *group) leave(memberID string, instanceID *string) (string, *kerr.Error) {
	if g.state == groupDead {
		return memberID, kerr.CoordinatorNotAvailable
	}
	if instanceID != nil {
		known, ok := g.static[*instanceID]
		if !ok {
			return memberID, kerr.UnknownMemberID
		}
		if memberID != "" && memberID != known {
			return memberID, kerr.FencedInstanceID
		}
		memberID = known
	}
	if t, ok := g.pending[memberID]; ok {
		t.Stop()
		delete(g.pending, memberID)
		return memberID, errNone
	}
	m := g.members[memberID]
	if m == nil {
		return memberID, kerr.UnknownMemberID
	}
	g.removeMember(m)
	g.rebalance()
	return memberID, errNone
}
