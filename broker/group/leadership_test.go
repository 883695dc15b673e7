package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// writeState runs a first coordinator over h that commits offsets for
// "offsets" and leaves "members" Stable with one member (session 10 s), then
// closes it, as a broker that stops or loses leadership would.
func writeState(t *testing.T, h *memHost) (member string) {
	t.Helper()
	f := newFixture(t, h, nil)
	for _, e := range f.commit("offsets", "", -1, "t", map[int32]int64{0: 17, 2: 4}) {
		wantErr(t, "commit", e, errNone)
	}
	member, _ = f.stableMember("members", 10*time.Second, 5*time.Second)
	f.c.Close()
	return member
}

// TestLoadInProgress: a newly elected coordinator answers
// COORDINATOR_LOAD_IN_PROGRESS until the partition is replayed, then serves
// what the previous one wrote. A restored member keeps its generation and
// gets a fresh session on the new coordinator's clock.
func TestLoadInProgress(t *testing.T) {
	h := newMemHost(1)
	member := writeState(t, h)
	l := h.logs[0]
	l.gate, l.readStarted = make(chan struct{}), make(chan struct{}, 1)

	f := newFixture(t, h, nil)
	<-l.readStarted
	if _, err := f.fetch("offsets"); err != kerr.CoordinatorLoadInProgress {
		t.Fatalf("fetch while loading: %v", err)
	}
	wantErr(t, "heartbeat while loading", f.heartbeat("members", member, 1), kerr.CoordinatorLoadInProgress)
	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version = 4
	wantErr(t, "list groups while loading", errFor(f.c.ListGroups(ctx, lg).ErrorCode), kerr.CoordinatorLoadInProgress)

	close(l.gate)
	if !f.waitLoad(0) {
		t.Fatal("load was not installed")
	}
	o, err := f.fetch("offsets")
	if err != nil || o["t"][0] != 17 || o["t"][2] != 4 {
		t.Fatalf("after loading: %v %v", o, err)
	}
	if d := f.describe("members"); d.State != "Stable" || len(d.Members) != 1 || d.Members[0].MemberID != member {
		t.Fatalf("restored group: %+v", d)
	}
	f.clock.Advance(10*time.Second - time.Millisecond)
	wantErr(t, "heartbeat of the restored member", f.heartbeat("members", member, 1), errNone)
	f.clock.Advance(10 * time.Second)
	if d := f.describe("members"); d.State != "Empty" {
		t.Fatalf("a restored member that stops heartbeating must expire: %s", d.State)
	}
}

// TestResignedMidLoad: resigning while the partition loads abandons the
// load; a later election at a newer epoch loads it afresh.
func TestResignedMidLoad(t *testing.T) {
	h := newMemHost(1)
	writeState(t, h)
	l := h.logs[0]
	l.gate, l.readStarted = make(chan struct{}), make(chan struct{}, 1)
	f := newFixture(t, h, nil)
	<-l.readStarted

	f.c.Resigned(0, 1)
	if _, err := f.fetch("offsets"); err != kerr.NotCoordinator {
		t.Fatalf("after resigning mid-load: %v", err)
	}
	close(l.gate)
	if f.waitLoad(0) {
		t.Fatal("a load for a resigned partition was installed")
	}
	if _, err := f.fetch("offsets"); err != kerr.NotCoordinator {
		t.Fatalf("after the abandoned load ended: %v", err)
	}
	f.c.Elected(0, 1) // the epoch it resigned at: stale
	if _, err := f.fetch("offsets"); err != kerr.NotCoordinator {
		t.Fatalf("a stale election was taken: %v", err)
	}
	f.c.Elected(0, 2)
	if !f.waitLoad(0) {
		t.Fatal("re-election did not load")
	}
	if o, err := f.fetch("offsets"); err != nil || o["t"][0] != 17 {
		t.Fatalf("after re-election: %v %v", o, err)
	}
}

// TestResignedAnswersParkedRequests is Kafka's onGroupUnloaded: members
// parked in JoinGroup or SyncGroup hear NOT_COORDINATOR, timers stop, and
// later requests get NOT_COORDINATOR.
func TestResignedAnswersParkedRequests(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	// "joining": a member parked in JoinGroup (the other never rejoins).
	f.stableMember("joining", 30*time.Second, 5*time.Second)
	join := f.join(joinReq("joining", "", 30*time.Second, 5*time.Second))
	// "syncing": a follower parked in SyncGroup, waiting for the leader.
	a, _ := f.stableMember("syncing", 30*time.Second, 5*time.Second)
	bj := f.join(joinReq("syncing", "", 30*time.Second, 5*time.Second))
	mustRecv(t, "a rejoins", f.join(joinReq("syncing", a, 30*time.Second, 5*time.Second)))
	b := mustRecv(t, "b joins", bj)
	sync := f.sync("syncing", b.MemberID, b.Generation, nil)
	if _, ok := recv(join); ok {
		t.Fatal("join answered early")
	}
	if _, ok := recv(sync); ok {
		t.Fatal("sync answered early")
	}

	f.c.Resigned(0, 1)
	wantErr(t, "parked join", errFor(mustRecv(t, "parked join", join).ErrorCode), kerr.NotCoordinator)
	wantErr(t, "parked sync", errFor(mustRecv(t, "parked sync", sync).ErrorCode), kerr.NotCoordinator)
	if n := f.clock.Pending(); n != 1 {
		t.Fatalf("%d timers armed after resigning, want only offset expiry", n)
	}
	wantErr(t, "heartbeat", f.heartbeat("syncing", a, 2), kerr.NotCoordinator)
	wantErr(t, "join", errFor(mustRecv(t, "join", f.join(joinReq("joining", "", 30*time.Second, 5*time.Second))).ErrorCode), kerr.NotCoordinator)
	if d := f.describe("syncing"); d.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("describe: %v", errFor(d.ErrorCode))
	}
}

// TestNotCoordinatorForOtherPartitions: only groups of partitions this
// broker leads are served.
func TestNotCoordinatorForOtherPartitions(t *testing.T) {
	f := newFixture(t, newMemHost(2), nil)
	f.c.Resigned(1, 1)
	here, there := idOnPartition(t, 0, 2, "here"), idOnPartition(t, 1, 2, "there")
	wantErr(t, "commit here", f.commit(here, "", -1, "t", map[int32]int64{0: 1})[0], errNone)
	wantErr(t, "commit there", f.commit(there, "", -1, "t", map[int32]int64{0: 1})[0], kerr.NotCoordinator)
	if _, err := f.fetch(there); err != kerr.NotCoordinator {
		t.Fatalf("fetch there: %v", err)
	}
	lg := kmsg.NewPtrListGroupsRequest()
	lg.Version = 4
	groups := f.c.ListGroups(ctx, lg).Groups
	if len(groups) != 1 || groups[0].Group != here {
		t.Fatalf("list groups: %+v", groups)
	}
	if p, e := f.c.PartitionFor(ctx, there); e != nil || p != 1 {
		t.Fatalf("PartitionFor(%s) = %d, %v", there, p, e)
	}
}

// TestElectedEpochs: a repeated or older election changes nothing; a newer
// one reloads, picking up what another leader wrote meanwhile; an older
// resignation is ignored.
func TestElectedEpochs(t *testing.T) {
	h := newMemHost(1)
	l := h.logs[0]
	f := newFixture(t, h, nil)
	f.c.Elected(0, 3)
	for _, e := range f.commit("g", "", -1, "t", map[int32]int64{0: 1}) {
		wantErr(t, "commit", e, errNone)
	}
	_, readsBefore := l.counts()
	f.c.Elected(0, 3)
	f.c.Elected(0, 2)
	f.c.Resigned(0, 2)
	if _, reads := l.counts(); reads != readsBefore {
		t.Fatal("a repeated or stale election reloaded the partition")
	}
	if o, err := f.fetch("g"); err != nil || o["t"][0] != 1 {
		t.Fatalf("after stale events: %v %v", o, err)
	}
	// Another leader commits at epoch 4, then leadership comes back at 5.
	if _, err := l.Append(ctx, buildGroupBatch([]groupRecord{offsetCommitRecord("g", "t", 0, committedOffset{offset: 99, expireTime: -1})}, 0)); err != nil {
		t.Fatal(err)
	}
	f.c.Elected(0, 5)
	if !f.waitLoad(0) {
		t.Fatal("newer election did not load")
	}
	if o, err := f.fetch("g"); err != nil || o["t"][0] != 99 {
		t.Fatalf("after reloading at a newer epoch: %v %v", o, err)
	}
}
