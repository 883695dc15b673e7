package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Timer-driven behaviour of the classic protocol, stepped on a fake clock:
// each test steps to just before a deadline and checks nothing happened,
// then across it and checks that it did.

// stableMember joins a lone member and syncs it: Stable at generation 1.
func (f *fixture) stableMember(groupID string, session, rebalance time.Duration) (member string, gen int32) {
	f.t.Helper()
	j := mustRecv(f.t, "join", f.join(joinReq(groupID, "", session, rebalance)))
	wantErr(f.t, "join", errFor(j.ErrorCode), errNone)
	s := mustRecv(f.t, "sync", f.sync(groupID, j.MemberID, j.Generation, map[string][]byte{j.MemberID: {1}}))
	wantErr(f.t, "sync", errFor(s.ErrorCode), errNone)
	return j.MemberID, j.Generation
}

func TestSessionTimeoutRemovesMember(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	id, gen := f.stableMember("g", 3*time.Second, 5*time.Second)

	// Heartbeats restart the session: 4 s in all, never 3 s without one.
	f.clock.Advance(2 * time.Second)
	wantErr(t, "heartbeat", f.heartbeat("g", id, gen), errNone)
	f.clock.Advance(2 * time.Second)
	wantErr(t, "heartbeat", f.heartbeat("g", id, gen), errNone)

	f.clock.Advance(3*time.Second - time.Millisecond)
	if d := f.describe("g"); d.State != "Stable" || len(d.Members) != 1 {
		t.Fatalf("1 ms before the session ends: %s with %d members", d.State, len(d.Members))
	}
	f.clock.Advance(time.Millisecond)
	if d := f.describe("g"); d.State != "Empty" || len(d.Members) != 0 {
		t.Fatalf("after the session ended: %s with %d members", d.State, len(d.Members))
	}
	wantErr(t, "heartbeat of the expired member", f.heartbeat("g", id, gen), kerr.UnknownMemberID)
}

// TestRebalanceTimeoutDropsMemberThatDoesNotRejoin: a member that does not
// rejoin within the rebalance timeout is removed and the join completes
// without it.
func TestRebalanceTimeoutDropsMemberThatDoesNotRejoin(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	a, gen := f.stableMember("g", 10*time.Second, 5*time.Second)
	b := f.join(joinReq("g", "", 10*time.Second, 5*time.Second))
	wantErr(t, "heartbeat during the rebalance", f.heartbeat("g", a, gen), kerr.RebalanceInProgress)

	f.clock.Advance(5*time.Second - time.Millisecond)
	if _, ok := recv(b); ok {
		t.Fatal("join answered before the rebalance timeout")
	}
	if d := f.describe("g"); d.State != "PreparingRebalance" || len(d.Members) != 2 {
		t.Fatalf("before the rebalance timeout: %s with %d members", d.State, len(d.Members))
	}
	f.clock.Advance(time.Millisecond)
	r := mustRecv(t, "join after the rebalance timeout", b)
	if r.ErrorCode != 0 || r.Generation != gen+1 || r.LeaderID != r.MemberID || len(r.Members) != 1 {
		t.Fatalf("join answer: %+v", r)
	}
	wantErr(t, "heartbeat of the dropped member", f.heartbeat("g", a, gen), kerr.UnknownMemberID)
}

// TestInitialRebalanceDelay is Kafka's InitialDelayedJoin: the first
// rebalance of an Empty group waits group.initial.rebalance.delay.ms, and
// again while members keep arriving, within the rebalance timeout.
func TestInitialRebalanceDelay(t *testing.T) {
	f := newFixture(t, newMemHost(1), func(o *Options) { o.InitialRebalanceDelay = 3 * time.Second })
	a := f.join(joinReq("g", "", 30*time.Second, 10*time.Second))
	f.clock.Advance(time.Second)
	b := f.join(joinReq("g", "", 30*time.Second, 10*time.Second))
	// The first delay ends at 3 s; b arrived in it, so it waits 3 s more.
	f.clock.Advance(5*time.Second - time.Millisecond)
	if _, ok := recv(a); ok {
		t.Fatal("join answered inside the extended initial delay")
	}
	f.clock.Advance(time.Millisecond)
	ra, rb := mustRecv(t, "a", a), mustRecv(t, "b", b)
	if ra.Generation != 1 || rb.Generation != 1 || ra.LeaderID != rb.LeaderID || ra.ErrorCode != 0 || rb.ErrorCode != 0 {
		t.Fatalf("answers: %+v / %+v", ra, rb)
	}
}

// TestMemberIDRequiredExpires is KIP-394: an id handed out with
// MEMBER_ID_REQUIRED is good for one session timeout.
func TestMemberIDRequiredExpires(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	ask := func() string {
		req := joinReq("g", "", 3*time.Second, 5*time.Second)
		req.Version = 9
		r := mustRecv(t, "join v9", f.join(req))
		wantErr(t, "first join v9", errFor(r.ErrorCode), kerr.MemberIDRequired)
		return r.MemberID
	}
	id1, id2 := ask(), ask()
	rejoin := func(id string) <-chan *kmsg.JoinGroupResponse {
		req := joinReq("g", id, 3*time.Second, 5*time.Second)
		req.Version = 9
		return f.join(req)
	}
	f.clock.Advance(3*time.Second - time.Millisecond)
	if r := mustRecv(t, "rejoin in time", rejoin(id1)); r.ErrorCode != 0 || r.MemberID != id1 {
		t.Fatalf("rejoin in time: %+v", r)
	}
	f.clock.Advance(time.Millisecond)
	wantErr(t, "rejoin after the session", errFor(mustRecv(t, "late rejoin", rejoin(id2)).ErrorCode), kerr.UnknownMemberID)
}

// TestSyncTimeoutRemovesMemberThatNeverSyncs is KAFKA-13128: members that
// do not SyncGroup within the rebalance timeout are removed and the others
// rebalance.
func TestSyncTimeoutRemovesMemberThatNeverSyncs(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	a, _ := f.stableMember("g", 30*time.Second, 5*time.Second)
	bj := f.join(joinReq("g", "", 30*time.Second, 5*time.Second))
	aj := mustRecv(t, "a rejoins", f.join(joinReq("g", a, 30*time.Second, 5*time.Second)))
	br := mustRecv(t, "b's join", bj)
	if aj.LeaderID != a || br.Generation != 2 {
		t.Fatalf("generation 2: leader %s, b %+v", aj.LeaderID, br)
	}
	// Only b (a follower) syncs; the leader never sends assignments.
	bs := f.sync("g", br.MemberID, 2, nil)
	f.clock.Advance(5*time.Second - time.Millisecond)
	if _, ok := recv(bs); ok {
		t.Fatal("sync answered before the rebalance timeout")
	}
	f.clock.Advance(time.Millisecond)
	wantErr(t, "b's parked sync", errFor(mustRecv(t, "b's sync", bs).ErrorCode), kerr.RebalanceInProgress)
	d := f.describe("g")
	if d.State != "PreparingRebalance" || len(d.Members) != 1 || d.Members[0].MemberID != br.MemberID {
		t.Fatalf("after the sync timeout: %+v", d)
	}
}

// TestStaticMemberRejoinKeepsGeneration: a static member coming back with an
// empty member id while the group is Stable gets a new id and its old
// assignment without a rebalance, and the old id is fenced (KIP-345).
func TestStaticMemberRejoinKeepsGeneration(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	req := joinReq("g", "", 30*time.Second, 5*time.Second)
	req.Version, req.InstanceID = 5, kmsg.StringPtr("i1")
	j := mustRecv(t, "static join", f.join(req))
	mustRecv(t, "sync", f.sync("g", j.MemberID, j.Generation, map[string][]byte{j.MemberID: {7}}))
	again := mustRecv(t, "static rejoin", f.join(req))
	if again.ErrorCode != 0 || again.Generation != j.Generation || again.MemberID == j.MemberID {
		t.Fatalf("rejoin: %+v", again)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = "g", j.MemberID, j.Generation, kmsg.StringPtr("i1")
	wantErr(t, "heartbeat of the replaced id", errFor(f.c.Heartbeat(ctx, hb).ErrorCode), kerr.FencedInstanceID)
	if d := f.describe("g"); d.State != "Stable" || len(d.Members) != 1 {
		t.Fatalf("after the static rejoin: %+v", d)
	}
}
