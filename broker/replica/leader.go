package replica

import (
	"fmt"
	"slices"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultLagTimeMax is Kafka's default replica.lag.time.max.ms.
const DefaultLagTimeMax = 30 * time.Second

// Config is what a broker knows when it becomes leader of a partition
// (Kafka's Partition.makeLeader).
type Config struct {
	// Meta is the committed partition state that names this broker leader.
	Meta coord.PartitionMeta
	// NodeID is this broker's node id.
	NodeID int32
	// LogEndOffset is the leader's log end offset now.
	LogEndOffset int64
	// HighWatermark is the high watermark the log had (its checkpoint). A
	// value above LogEndOffset is lowered to it: the high watermark never
	// exceeds the leader's log end offset.
	HighWatermark int64
	// LeaderEpochStartOffset is where Meta.LeaderEpoch starts in this log:
	// the log end offset when this broker became leader at that epoch, as
	// recorded in the leader-epoch cache. A follower joins the ISR only once
	// it has reached it (Kafka's leaderEpochStartOffsetOpt).
	LeaderEpochStartOffset int64
	// LagTimeMax is replica.lag.time.max.ms; 0 means DefaultLagTimeMax.
	LagTimeMax time.Duration
	// Now is the time of becoming leader: ISR followers count as caught up
	// at this instant (Kafka's resetReplicaState for a new leader).
	Now time.Time
}

// EnsureDefaults fills zero values with Kafka's defaults.
func (c *Config) EnsureDefaults() {
	if c.LagTimeMax == 0 {
		c.LagTimeMax = DefaultLagTimeMax
	}
	if c.HighWatermark > c.LogEndOffset {
		c.HighWatermark = c.LogEndOffset
	}
}

// Validate reports a Config no leader can start from.
func (c *Config) Validate() error {
	m := c.Meta
	switch {
	case m.Leader != c.NodeID:
		return fmt.Errorf("replica: partition %d names leader %d, not this broker %d", m.Partition, m.Leader, c.NodeID)
	case !slices.Contains(m.Replicas, c.NodeID):
		return fmt.Errorf("replica: leader %d is not a replica of partition %d %v", c.NodeID, m.Partition, m.Replicas)
	case !slices.Contains(m.ISR, c.NodeID):
		return fmt.Errorf("replica: leader %d is not in the ISR %v of partition %d", c.NodeID, m.ISR, m.Partition)
	case c.LogEndOffset < 0:
		return fmt.Errorf("replica: negative log end offset %d", c.LogEndOffset)
	case c.HighWatermark < 0:
		return fmt.Errorf("replica: negative high watermark %d", c.HighWatermark)
	case c.LeaderEpochStartOffset < 0 || c.LeaderEpochStartOffset > c.LogEndOffset:
		return fmt.Errorf("replica: leader epoch start offset %d outside [0, %d]", c.LeaderEpochStartOffset, c.LogEndOffset)
	case c.LagTimeMax < 0:
		return fmt.Errorf("replica: negative replica.lag.time.max.ms %v", c.LagTimeMax)
	}
	return nil
}

// Role says whether the state is still the leader's.
type Role int

const (
	// Leading: this broker still leads the partition at the same leader
	// epoch; keep using the state.
	Leading Role = iota
	// NotLeader: the stored meta names another leader (or none). Discard the
	// state and become a follower (or stop serving the partition).
	NotLeader
	// NewLeaderEpoch: this broker leads again, at a newer leader epoch.
	// Discard the state, record the new epoch at the log end offset in the
	// leader-epoch cache and build a new Leader from the new meta, as Kafka's
	// makeLeader resets follower state on a new epoch.
	NewLeaderEpoch
)

func (r Role) String() string {
	switch r {
	case Leading:
		return "leading"
	case NotLeader:
		return "not-leader"
	case NewLeaderEpoch:
		return "new-leader-epoch"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// Result is what a call changed.
type Result struct {
	// HighWatermark is the high watermark after the call.
	HighWatermark int64
	// HWAdvanced: the high watermark moved. Complete acks=all produces whose
	// offsets are now below it, wake fetchers waiting on it, and checkpoint
	// it when convenient.
	HWAdvanced bool
	// Proposal, when not nil, is a new ISR change to write with
	// coord.UpdatePartition(ctx, topic, Proposal.Meta, coord.AsLeader).
	Proposal *Proposal
	// Role is Leading unless the call learnt that this state is over.
	Role Role
}

// Registration is a follower's broker registration as this broker sees it
// (its cached coord.Brokers), for KIP-903's eligibility check.
type Registration struct {
	// Alive: the broker is registered (its session is live).
	Alive bool
	// Epoch is its registered broker epoch.
	Epoch int64
	// ShuttingDown: it is in controlled shutdown.
	ShuttingDown bool
}

// RegistrationOf finds broker id in a live broker list (coord.Brokers or
// Event.Brokers); not found means not alive.
func RegistrationOf(brokers []coord.BrokerInfo, id int32) Registration {
	for _, b := range brokers {
		if b.NodeID == id {
			return Registration{Alive: true, Epoch: b.Epoch, ShuttingDown: b.ShuttingDown}
		}
	}
	return Registration{}
}

// Fetch is one partition of a follower's replica Fetch request.
type Fetch struct {
	// ReplicaID is the fetching follower (ReplicaState.ReplicaId).
	ReplicaID int32
	// BrokerEpoch is the follower's broker epoch from the request
	// (ReplicaState.ReplicaEpoch, KIP-903), -1 when the request has none.
	BrokerEpoch int64
	// FetchOffset is the follower's log end offset.
	FetchOffset int64
	// Registered is the follower's registration as this broker sees it now.
	Registered Registration
	// Now is when the request was received.
	Now time.Time
}

// follower is the leader's record of one follower (Kafka's ReplicaState).
type follower struct {
	// leo is the last fetch offset, -1 before the first fetch.
	leo int64
	// lastFetchLeaderLEO is the leader's log end offset at the previous
	// fetch, -1 before the first.
	lastFetchLeaderLEO int64
	lastFetchTime      time.Time
	// lastCaughtUp is the latest time t such that the follower's latest
	// fetch offset reached the leader's log end offset as of t.
	lastCaughtUp time.Time
	// eligible is KIP-903's check as of the last fetch: the fetch carried the
	// registered broker epoch of a live broker that is not shutting down.
	eligible bool
}

// caughtUp is Kafka's ReplicaState.isCaughtUp: at the leader's end, or
// caught up within the lag time.
func (f *follower) caughtUp(leaderLEO int64, now time.Time, lagMax time.Duration) bool {
	return f.leo == leaderLEO || (!f.lastCaughtUp.IsZero() && now.Sub(f.lastCaughtUp) <= lagMax)
}

// Leader is the leader's view of one partition it leads. It is not safe for
// concurrent use: the caller serialises calls (one owner per partition, e.g.
// under the partition's append lock) and applies log appends, follower
// fetches, metadata updates and proposal outcomes in the order they happen.
type Leader struct {
	nodeID     int32
	lagMax     time.Duration
	meta       coord.PartitionMeta // last committed state
	leo        int64
	hw         int64
	epochStart int64
	followers  map[int32]*follower // every replica and ISR member but the leader
	pending    *pendingChange
	role       Role
}

// pendingChange is an ISR change written or about to be written: Kafka's
// PendingExpandIsr (added >= 0) or PendingShrinkIsr (added == -1).
type pendingChange struct {
	proposal Proposal
	added    int32
}

// NewLeader starts the leader state from the committed meta, and computes
// the high watermark once (Kafka's makeLeader ends with
// maybeIncrementLeaderHW: with the leader alone in the ISR the high
// watermark is its log end offset at once).
func NewLeader(cfg Config) (*Leader, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Leader{
		nodeID:     cfg.NodeID,
		lagMax:     cfg.LagTimeMax,
		leo:        cfg.LogEndOffset,
		hw:         cfg.HighWatermark,
		epochStart: cfg.LeaderEpochStartOffset,
		followers:  map[int32]*follower{},
		role:       Leading,
	}
	l.adopt(cfg.Meta, cfg.Now)
	l.advanceHW(cfg.Now)
	return l, nil
}

// adopt makes m the committed state and keeps one follower record per
// replica and ISR member (ISR members outside the replica set get a record
// too: they never fetch, so they hold the high watermark until they are
// shrunk out, rather than being ignored). New followers in the ISR count as
// caught up now; others as never caught up (Kafka's resetReplicaState).
func (l *Leader) adopt(m coord.PartitionMeta, now time.Time) {
	l.meta = m.Clone()
	keep := map[int32]bool{}
	for _, ids := range [][]int32{m.Replicas, m.ISR} {
		for _, id := range ids {
			if id == l.nodeID {
				continue
			}
			keep[id] = true
			if _, ok := l.followers[id]; !ok {
				f := &follower{leo: -1, lastFetchLeaderLEO: -1}
				if slices.Contains(m.ISR, id) {
					f.lastCaughtUp = now
				}
				l.followers[id] = f
			}
		}
	}
	for id := range l.followers {
		if !keep[id] {
			delete(l.followers, id)
		}
	}
}

// inMaximalISR reports membership of KIP-497's maximal ISR: the committed
// ISR plus a pending addition. A pending removal is still a member.
func (l *Leader) inMaximalISR(id int32) bool {
	if l.pending != nil && l.pending.added == id {
		return true
	}
	return slices.Contains(l.meta.ISR, id)
}

// advanceHW is Kafka's maybeIncrementLeaderHW: the new high watermark is the
// smallest log end offset of the leader and of every follower that is in
// the maximal ISR, or that is caught up and eligible (it is about to join:
// waiting for it lets it reach the high watermark and join even while
// producers keep the leader ahead). It only moves forward, and never above
// the leader's log end offset.
func (l *Leader) advanceHW(now time.Time) bool {
	candidate := l.leo
	for id, f := range l.followers {
		if f.leo >= candidate {
			continue
		}
		if l.inMaximalISR(id) || (f.eligible && f.caughtUp(l.leo, now, l.lagMax)) {
			candidate = f.leo
		}
	}
	if candidate > l.hw {
		l.hw = candidate
		return true
	}
	return false
}

func (l *Leader) result(advanced bool, p *Proposal) Result {
	return Result{HighWatermark: l.hw, HWAdvanced: advanced, Proposal: p, Role: l.role}
}

// ErrNotLeading is returned by calls on a state whose Role is no longer
// Leading; it wraps kerr.NotLeaderForPartition (NOT_LEADER_OR_FOLLOWER).
var ErrNotLeading = fmt.Errorf("replica: no longer the leader: %w", kerr.NotLeaderForPartition)

// FollowerFetch records a follower's fetch (Kafka's
// Partition.updateFollowerFetchState): the fetch offset is the follower's
// log end offset; the follower's last caught-up time becomes the fetch time
// if it fetched from the leader's current log end offset, or the previous
// fetch's time if it reached the leader's log end offset as of that fetch.
// Then the follower may be proposed for the ISR and the high watermark may
// advance.
//
// Call it after the read, and only when the fetch is answered with records
// (not a DivergingEpoch: Kafka does not update follower state then).
// Errors (the fetch is refused, the state is unchanged) wrap the Kafka error
// to answer: UNKNOWN_LEADER_EPOCH for an id that is not a replica (Kafka
// answers that when the request names the current leader epoch, as every
// KIP-320 follower does), NOT_LEADER_OR_FOLLOWER for a fetch carrying an
// older broker epoch than the follower's registration (a stale process,
// KIP-903), OFFSET_OUT_OF_RANGE for an offset beyond the leader's log end.
func (l *Leader) FollowerFetch(f Fetch) (Result, error) {
	if l.role != Leading {
		return l.result(false, nil), ErrNotLeading
	}
	if f.ReplicaID == l.nodeID || !slices.Contains(l.meta.Replicas, f.ReplicaID) {
		return l.result(false, nil), fmt.Errorf("replica: broker %d is not a follower of partition %d %v at leader epoch %d: %w",
			f.ReplicaID, l.meta.Partition, l.meta.Replicas, l.meta.LeaderEpoch, kerr.UnknownLeaderEpoch)
	}
	if f.FetchOffset < 0 || f.FetchOffset > l.leo {
		return l.result(false, nil), fmt.Errorf("replica: fetch offset %d from broker %d outside [0, %d]: %w",
			f.FetchOffset, f.ReplicaID, l.leo, kerr.OffsetOutOfRange)
	}
	if f.BrokerEpoch >= 0 && f.Registered.Alive && f.Registered.Epoch > f.BrokerEpoch {
		return l.result(false, nil), fmt.Errorf("replica: fetch from broker %d carries broker epoch %d, registered is %d: %w",
			f.ReplicaID, f.BrokerEpoch, f.Registered.Epoch, kerr.NotLeaderForPartition)
	}
	st := l.followers[f.ReplicaID]
	switch {
	case f.FetchOffset >= l.leo:
		st.lastCaughtUp = later(st.lastCaughtUp, f.Now)
	case f.FetchOffset >= st.lastFetchLeaderLEO:
		st.lastCaughtUp = later(st.lastCaughtUp, st.lastFetchTime)
	}
	st.lastFetchLeaderLEO = max(st.lastFetchLeaderLEO, l.leo)
	st.lastFetchTime = f.Now
	st.leo = f.FetchOffset
	st.eligible = isrEligible(f)

	p := l.maybeExpand(f.ReplicaID)
	return l.result(l.advanceHW(f.Now), p), nil
}

// isrEligible is KIP-903's rule (Kafka's isReplicaIsrEligible in KRaft
// mode): the broker is alive, not in controlled shutdown, and the fetch
// carries exactly its registered broker epoch. Unlike Kafka, a fetch without
// an epoch (-1) is not eligible: every Strata follower sends one, and
// accepting -1 would let a rebooted broker's stale fetch re-join the ISR.
func isrEligible(f Fetch) bool {
	return f.Registered.Alive && !f.Registered.ShuttingDown && f.BrokerEpoch >= 0 && f.BrokerEpoch == f.Registered.Epoch
}

// LeaderAppend records the leader's new log end offset after an append (or
// a roll that moved it). The high watermark may advance, e.g. when the
// leader is alone in the ISR. An end offset below the current one is a
// caller bug (a leader never truncates) and is refused.
func (l *Leader) LeaderAppend(logEndOffset int64, now time.Time) (Result, error) {
	if l.role != Leading {
		return l.result(false, nil), ErrNotLeading
	}
	if logEndOffset < l.leo {
		return l.result(false, nil), fmt.Errorf("replica: leader log end offset going back from %d to %d", l.leo, logEndOffset)
	}
	l.leo = logEndOffset
	return l.result(l.advanceHW(now), nil), nil
}

// Tick lets time pass (call it every few seconds, Kafka checks every
// replica.lag.time.max.ms / 2): it proposes removing from the ISR every
// follower that has not been caught up for longer than the lag time (Kafka's
// maybeShrinkIsr / getOutOfSyncReplicas) — never the leader, so the ISR never
// becomes empty — unless a change is already in flight. The high watermark
// may advance too, once a follower that is outside the ISR has stopped
// counting as caught up.
func (l *Leader) Tick(now time.Time) Result {
	if l.role != Leading {
		return l.result(false, nil)
	}
	advanced := l.advanceHW(now)
	if l.pending != nil {
		return l.result(advanced, nil)
	}
	var out []int32
	for _, id := range l.meta.ISR {
		if id == l.nodeID {
			continue
		}
		if f, ok := l.followers[id]; !ok || !f.caughtUp(l.leo, now, l.lagMax) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		return l.result(advanced, nil)
	}
	isr := make([]int32, 0, len(l.meta.ISR))
	for _, id := range l.meta.ISR {
		if !slices.Contains(out, id) {
			isr = append(isr, id)
		}
	}
	return l.result(advanced, l.propose(Shrink, isr, -1, out))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// HighWatermark is the current high watermark.
func (l *Leader) HighWatermark() int64 { return l.hw }

// LogEndOffset is the leader's log end offset as last reported.
func (l *Leader) LogEndOffset() int64 { return l.leo }

// LeaderEpochStartOffset is where the current leader epoch starts.
func (l *Leader) LeaderEpochStartOffset() int64 { return l.epochStart }

// Meta is the last committed partition state (a copy).
func (l *Leader) Meta() coord.PartitionMeta { return l.meta.Clone() }

// Role is Leading until a call learnt otherwise.
func (l *Leader) Role() Role { return l.role }

// MaximalISR is the committed ISR plus a pending addition (KIP-497), in ISR
// order: the replicas the high watermark and acks=all wait for.
func (l *Leader) MaximalISR() []int32 {
	isr := slices.Clone(l.meta.ISR)
	if l.pending != nil && l.pending.added >= 0 && !slices.Contains(isr, l.pending.added) {
		isr = append(isr, l.pending.added)
	}
	return isr
}

// FollowerState is one follower as the leader sees it (for metrics,
// DescribeLogDirs-style reports and `cluster status`).
type FollowerState struct {
	ID int32
	// LogEndOffset is -1 before the first fetch at this leader epoch.
	LogEndOffset int64
	// LastCaughtUp is zero if never caught up at this leader epoch.
	LastCaughtUp time.Time
	InISR        bool
	// Eligible is KIP-903's check at the last fetch.
	Eligible bool
}

// Followers lists the followers by id.
func (l *Leader) Followers() []FollowerState {
	out := make([]FollowerState, 0, len(l.followers))
	for id, f := range l.followers {
		out = append(out, FollowerState{ID: id, LogEndOffset: f.leo, LastCaughtUp: f.lastCaughtUp,
			InISR: slices.Contains(l.meta.ISR, id), Eligible: f.eligible})
	}
	slices.SortFunc(out, func(a, b FollowerState) int { return int(a.ID) - int(b.ID) })
	return out
}
