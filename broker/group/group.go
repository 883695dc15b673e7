package group

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
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

// groupMember is one member of a classic group, guarded by its group's mu.
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
	session          clock.Timer
}

// group is one consumer group: the classic rebalance state machine
// (Kafka's ClassicGroup + GroupCoordinator) and its committed offsets.
// Everything that changes is under mu (members' fields too); timers take mu
// and check they are still current before acting, since a fired timer
// cannot be retracted. c, id and owner never change.
type group struct {
	c     *Coordinator
	id    string
	owner *ownedPartition // the __consumer_offsets partition holding its records

	// mu guards the group and its members' fields.
	mu struct {
		sync.Mutex
		state        groupState
		stateTime    int64 // ms, when state last changed (GroupMetadataValue.CurrentStateTimestamp)
		protocolType string
		protocol     string
		generation   int32
		leader       string
		members      map[string]*groupMember
		static       map[string]string      // group.instance.id → member id
		pending      map[string]clock.Timer // KIP-394: member ids handed out with MEMBER_ID_REQUIRED
		pendingSync  map[string]bool        // members that must still SyncGroup this generation
		timerSeq     uint64                 // bumps to invalidate the join/sync timers
		joinTimer    clock.Timer
		syncTimer    clock.Timer
		// initial rebalance delay (group.initial.rebalance.delay.ms):
		// while set, a rebalance out of Empty waits for more members
		// before it completes, as Kafka's InitialDelayedJoin.
		inInitialDelay  bool
		joinedInDelay   bool
		delayBudgetLeft time.Duration

		offsets map[string]map[int32]committedOffset
		// pendingTxn holds TxnOffsetCommit offsets per producer id until
		// the transaction's marker commits or aborts them (txn_offsets.go).
		pendingTxn map[int64]map[topicPartition]committedOffset
	}
}

func newGroup(c *Coordinator, id string, owner *ownedPartition) *group {
	g := &group{c: c, id: id, owner: owner}
	g.mu.state = groupEmpty
	g.mu.stateTime = c.now().UnixMilli()
	g.mu.members = map[string]*groupMember{}
	g.mu.static = map[string]string{}
	g.mu.pending = map[string]clock.Timer{}
	g.mu.offsets = map[string]map[int32]committedOffset{}
	g.mu.pendingTxn = map[int64]map[topicPartition]committedOffset{}
	return g
}

func (g *group) setState(s groupState) {
	g.mu.state = s
	g.mu.stateTime = g.c.now().UnixMilli()
}

func newMemberID(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	u := hex.EncodeToString(b[:])
	return prefix + "-" + u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
}

// afterFunc runs fn with g.mu held after d on the coordinator's clock,
// unless the group died (deleted, expired, unloaded) or the coordinator
// closed meanwhile. The caller holds g.mu.
func (g *group) afterFunc(d time.Duration, fn func()) clock.Timer {
	return g.c.afterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.mu.state == groupDead {
			return
		}
		fn()
	})
}

func (g *group) stopTimers() {
	g.mu.timerSeq++
	if g.mu.joinTimer != nil {
		g.mu.joinTimer.Stop()
	}
	if g.mu.syncTimer != nil {
		g.mu.syncTimer.Stop()
	}
	for _, m := range g.mu.members {
		if m.session != nil {
			m.session.Stop()
		}
	}
	for _, t := range g.mu.pending {
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
		if g.mu.members[m.id] != m || m.joinWait != nil || m.syncWait != nil {
			return
		}
		g.c.log.Info("group member session expired", "group", g.id, "member", m.id)
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
	delete(g.mu.members, m.id)
	delete(g.mu.pendingSync, m.id)
	if m.instanceID != nil && g.mu.static[*m.instanceID] == m.id {
		delete(g.mu.static, *m.instanceID)
	}
	m.failParked(kerr.UnknownMemberID)
}

// fence answers m's parked requests with FENCED_INSTANCE_ID: a newer
// instance with the same group.instance.id replaced it (KIP-345).
func (g *group) fence(m *groupMember) { m.failParked(kerr.FencedInstanceID) }

// failParked answers m's parked JoinGroup and SyncGroup, if any, with e.
func (m *groupMember) failParked(e *kerr.Error) {
	if m.joinWait != nil {
		resp := kmsg.NewPtrJoinGroupResponse()
		resp.ErrorCode, resp.MemberID, resp.Generation = e.Code, m.id, -1
		m.joinWait <- resp
		m.joinWait = nil
	}
	if m.syncWait != nil {
		resp := kmsg.NewPtrSyncGroupResponse()
		resp.ErrorCode = e.Code
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
	known, ok := g.mu.static[*instanceID]
	if !ok {
		return kerr.UnknownMemberID
	}
	if known != memberID {
		return kerr.FencedInstanceID
	}
	return nil
}

// ---- Heartbeat ----

func (g *group) heartbeat(memberID string, instanceID *string, generation int32) *kerr.Error {
	if g.mu.state == groupDead {
		return kerr.CoordinatorNotAvailable
	}
	if e := g.checkInstance(instanceID, memberID); e != nil {
		return e
	}
	m := g.mu.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID
	}
	if generation != g.mu.generation {
		return kerr.IllegalGeneration
	}
	switch g.mu.state {
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
	if g.mu.state == groupDead {
		return memberID, kerr.CoordinatorNotAvailable
	}
	if instanceID != nil {
		known, ok := g.mu.static[*instanceID]
		if !ok {
			return memberID, kerr.UnknownMemberID
		}
		if memberID != "" && memberID != known {
			return memberID, kerr.FencedInstanceID
		}
		memberID = known
	}
	if t, ok := g.mu.pending[memberID]; ok {
		t.Stop()
		delete(g.mu.pending, memberID)
		return memberID, errNone
	}
	m := g.mu.members[memberID]
	if m == nil {
		return memberID, kerr.UnknownMemberID
	}
	g.removeMember(m)
	g.rebalance()
	return memberID, errNone
}
