package broker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

func TestGroupAdmin(t *testing.T) {
	b, _ := startGroupBroker(t, "")
	topic := "admin-groups"
	testenv.CreateTopic(t, b.Addr, topic, 4, nil)
	ctx := testenv.Context(t, 30*time.Second)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))

	// An active consumer group and a simple (admin-committed) group.
	ev := newGroupEvents()
	cl := testenv.Client(t, b.Addr, groupOpts(ev, "active", topic, kgo.CooperativeStickyBalancer())...)
	pollUntilClosed(t, cl, nil)
	waitForAssignment(t, ev, adm, "active", topic, 1, 4)
	offs := kadm.Offsets{}
	offs.AddOffset(topic, 0, 5, -1)
	offs.AddOffset(topic, 1, 7, -1)
	if r, err := adm.CommitOffsets(ctx, "simple", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := listed["active"]; !ok || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Fatalf("active group listed as %+v", listed["active"])
	}
	if g, ok := listed["simple"]; !ok || g.State != "Empty" {
		t.Fatalf("simple group listed as %+v", listed["simple"])
	}
	empties, err := adm.ListGroups(ctx, "Empty")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := empties["active"]; ok || len(empties) != 1 {
		t.Fatalf("state filter Empty gave %v", empties.Groups())
	}

	dg, err := adm.DescribeGroups(ctx, "active", "simple", "nope")
	if err != nil {
		t.Fatal(err)
	}
	a := dg["active"]
	if a.State != "Stable" || a.Protocol != "cooperative-sticky" || len(a.Members) != 1 || a.Members[0].ClientHost == "" {
		t.Fatalf("describe active: %+v", a)
	}
	if dg["nope"].State != "Dead" {
		t.Fatalf("describe unknown group: %+v", dg["nope"])
	}

	// DeleteGroups: a group with members cannot go; an empty one can.
	del, err := adm.DeleteGroups(ctx, "active", "simple", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(del["active"].Err, kerr.NonEmptyGroup) || del["simple"].Err != nil || !errors.Is(del["nope"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete groups: active %v, simple %v, nope %v", del["active"].Err, del["simple"].Err, del["nope"].Err)
	}
	got, err := adm.FetchOffsets(ctx, "simple")
	if err != nil || len(got) != 0 {
		t.Fatalf("offsets after delete: %v %v", got, err)
	}

	// OffsetDelete: a subscribed topic is refused while the group is live.
	commit := kadm.Offsets{}
	commit.AddOffset(topic, 2, 3, -1)
	if r, err := adm.CommitOffsets(ctx, "simple2", commit); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	s := kadm.TopicsSet{}
	s.Add(topic, 2)
	od, err := adm.DeleteOffsets(ctx, "simple2", s)
	if err != nil || od.Error() != nil {
		t.Fatalf("offset delete: %v %v", err, od.Error())
	}
	if got, _ := adm.FetchOffsets(ctx, "simple2"); len(got) != 0 {
		t.Fatalf("offsets left after OffsetDelete: %v", got)
	}
	od, err = adm.DeleteOffsets(ctx, "active", s)
	if err != nil {
		t.Fatal(err)
	}
	if e := od[topic][2]; !errors.Is(e, kerr.GroupSubscribedToTopic) {
		t.Fatalf("OffsetDelete on a subscribed topic: %v", e)
	}
	// Close waits for its LeaveGroup answer, and the group empties before
	// that answer is sent: no waiting needed.
	cl.Close()
	if g := describe(t, adm, "active"); g.State != "Empty" {
		t.Fatalf("after the last member left: %s", g.State)
	}
	del, err = adm.DeleteGroups(ctx, "active")
	if err != nil || del["active"].Err != nil {
		t.Fatalf("delete emptied group: %v %v", err, del["active"].Err)
	}
}

// TestGroupStaticMembership: a static member (group.instance.id) that
// restarts within its session keeps its partitions without a rebalance
// (same generation), and an instance id reused while the old member is live
// fences the old one.
func TestGroupStaticMembership(t *testing.T) {
	b, _ := startGroupBroker(t, "")
	topic, group := "static", "g-static"
	testenv.CreateTopic(t, b.Addr, topic, 4, nil)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))
	var revokedB atomic.Int32
	ev, evB := newGroupEvents(), newGroupEvents()
	start := func(instance string, ev *groupEvents, extra ...kgo.Opt) *kgo.Client {
		opts := append(groupOpts(ev, group, topic, kgo.RangeBalancer()), kgo.InstanceID(instance), kgo.SessionTimeout(5*time.Second))
		cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, opts...), extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		pollUntilClosed(t, cl, nil)
		return cl
	}
	memberOf := func(g kadm.DescribedGroup, instance string) string {
		for _, m := range g.Members {
			if m.InstanceID != nil && *m.InstanceID == instance {
				return m.MemberID
			}
		}
		return ""
	}
	a := start("a", ev)
	start("b", evB, kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { revokedB.Add(1) }), kgo.WithHooks(ev))
	beforeA := memberOf(waitForAssignment(t, ev, adm, group, topic, 2, 2), "a")
	revokedBefore := revokedB.Load()
	a.Close() // static members do not leave on close (KIP-345)
	start("a", ev)
	ev.until(t, "the restarted static member replacing the old id", func() bool {
		g := describe(t, adm, group)
		id := memberOf(g, "a")
		return g.Err == nil && g.State == "Stable" && id != "" && id != beforeA
	})
	waitForAssignment(t, ev, adm, group, topic, 2, 2)
	// Had the rejoin started a rebalance, b's next heartbeat would say so
	// and b would revoke before heartbeating again.
	evB.heartbeatsAfter(t, 3)
	if n := revokedB.Load(); n != revokedBefore {
		t.Fatalf("the other member's partitions were revoked %d times: the static rejoin caused a rebalance", n-revokedBefore)
	}

	// Raw protocol: the replaced member id is fenced.
	cl := testenv.Client(t, b.Addr)
	ctx := testenv.Context(t, 10*time.Second)
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.InstanceID = group, beforeA, kmsg.StringPtr("a")
	hb.Generation = 1
	resp, err := hb.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != kerr.FencedInstanceID.Code {
		t.Fatalf("heartbeat of a replaced static member: %v", kerr.ErrorForCode(resp.ErrorCode))
	}
}

// TestGroupOffsetRetention steps the broker's clock: offsets of a group that
// has been Empty for offsets.retention.minutes expire (checked every
// offsets.retention.check.interval.ms), a simple group's offsets that long
// after their commit, and the emptied groups go away.
func TestGroupOffsetRetention(t *testing.T) {
	b, fake := startGroupBroker(t, "",
		"offsets.retention.minutes", "60",
		"offsets.retention.check.interval.ms", "60000",
	)
	topic := "retention-groups"
	testenv.CreateTopic(t, b.Addr, topic, 2, nil)
	ctx := testenv.Context(t, 30*time.Second)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))

	// A consumer group that commits, then empties (at fake time 0).
	ev := newGroupEvents()
	cl := testenv.Client(t, b.Addr, append(groupOpts(ev, "was-active", topic, kgo.RangeBalancer()), kgo.DisableAutoCommit())...)
	pollUntilClosed(t, cl, nil)
	waitForAssignment(t, ev, adm, "was-active", topic, 1, 2)
	var commitErr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 1}}}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
	})
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	cl.Close()
	if g := describe(t, adm, "was-active"); g.State != "Empty" {
		t.Fatalf("after its member left: %s", g.State)
	}
	// A simple group committed 30 minutes later keeps its offsets longer.
	fake.Advance(30 * time.Minute)
	offs := kadm.Offsets{}
	offs.AddOffset(topic, 0, 1, -1)
	if r, err := adm.CommitOffsets(ctx, "simple", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	fetched := func(group string) int {
		t.Helper()
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatalf("fetch %s: %v", group, err)
		}
		return len(got)
	}

	// Expiry runs inside Advance, so each check below sees its result.
	fake.Advance(30*time.Minute - time.Millisecond)
	if fetched("was-active") != 1 || fetched("simple") != 1 {
		t.Fatal("offsets expired 1 ms before offsets.retention.minutes")
	}
	fake.Advance(time.Millisecond)
	if fetched("was-active") != 0 {
		t.Fatal("the emptied group's offsets outlived offsets.retention.minutes")
	}
	if fetched("simple") != 1 {
		t.Fatal("the simple group's newer offsets expired too")
	}
	l, err := adm.ListGroups(ctx)
	if _, ok := l["was-active"]; err != nil || ok {
		t.Fatalf("the expired, empty group is still listed: %v %v", l.Groups(), err)
	}
	fake.Advance(30 * time.Minute)
	if fetched("simple") != 0 {
		t.Fatal("the simple group's offsets outlived offsets.retention.minutes")
	}
}
