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

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/testenv"
)

func TestGroupAdmin(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: groupSettings()})
	topic := "admin-groups"
	testenv.CreateTopic(t, b.Addr, topic, 4, nil)
	ctx := testenv.Context(t, 30*time.Second)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))

	// An active consumer group and a simple (admin-committed) group.
	cl := testenv.Client(t, b.Addr, groupOpts("active", topic, kgo.CooperativeStickyBalancer())...)
	pollUntilClosed(t, cl, nil)
	waitForAssignment(t, adm, "active", topic, 1, 4)
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
	cl.Close()
	waitForState(t, adm, "active", "Empty")
	del, err = adm.DeleteGroups(ctx, "active")
	if err != nil || del["active"].Err != nil {
		t.Fatalf("delete emptied group: %v %v", err, del["active"].Err)
	}
}

func waitForState(t *testing.T, adm *kadm.Client, group, state string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		ctx := testenv.Context(t, 5*time.Second)
		dg, err := adm.DescribeGroups(ctx, group)
		if err == nil && dg[group].State == state {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s never reached state %s", group, state)
}

// TestGroupStaticMembership: a static member (group.instance.id) that
// restarts within its session keeps its partitions without a rebalance
// (same generation), and an instance id reused while the old member is live
// fences the old one.
func TestGroupStaticMembership(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: groupSettings()})
	topic, group := "static", "g-static"
	testenv.CreateTopic(t, b.Addr, topic, 4, nil)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))
	var revokedB atomic.Int32
	start := func(instance string, extra ...kgo.Opt) *kgo.Client {
		opts := append(groupOpts(group, topic, kgo.RangeBalancer()), kgo.InstanceID(instance), kgo.SessionTimeout(5*time.Second))
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
	a := start("a")
	start("b", kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { revokedB.Add(1) }))
	beforeA := memberOf(waitForAssignment(t, adm, group, topic, 2, 2), "a")
	revokedBefore := revokedB.Load()
	a.Close() // static members do not leave on close (KIP-345)
	start("a")
	waitFor(t, func() bool {
		ctx := testenv.Context(t, 5*time.Second)
		dg, err := adm.DescribeGroups(ctx, group)
		id := memberOf(dg[group], "a")
		return err == nil && dg[group].State == "Stable" && id != "" && id != beforeA
	})
	waitForAssignment(t, adm, group, topic, 2, 2)
	time.Sleep(300 * time.Millisecond)
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

// TestGroupOffsetRetention injects the broker clock: offsets of a group that
// has been Empty longer than offsets.retention.minutes expire, and a
// returning consumer falls back to its reset offset.
func TestGroupOffsetRetention(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	b := testenv.StartBroker(t, broker.Options{Clock: clock.WithNow(now), Settings: groupSettings(
		"offsets.retention.minutes", "60",
		"offsets.retention.check.interval.ms", "20",
	)})
	topic := "retention-groups"
	testenv.CreateTopic(t, b.Addr, topic, 2, nil)
	ctx := testenv.Context(t, 30*time.Second)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))

	// A consumer group that commits, then empties.
	cl := testenv.Client(t, b.Addr, append(groupOpts("was-active", topic, kgo.RangeBalancer()), kgo.DisableAutoCommit())...)
	pollUntilClosed(t, cl, nil)
	waitForAssignment(t, adm, "was-active", topic, 1, 2)
	offs := kadm.Offsets{}
	offs.AddOffset(topic, 0, 1, -1)
	var commitErr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 1}}}, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
	})
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	cl.Close()
	waitForState(t, adm, "was-active", "Empty")
	// A simple group committed later keeps its offsets longer.
	skew.Store(int64(30 * time.Minute))
	if r, err := adm.CommitOffsets(ctx, "simple", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}

	skew.Store(int64(59 * time.Minute))
	time.Sleep(100 * time.Millisecond)
	if got, _ := adm.FetchOffsets(ctx, "was-active"); len(got) != 1 {
		t.Fatalf("offsets expired early: %v", got)
	}
	skew.Store(int64(61 * time.Minute))
	waitFor(t, func() bool {
		got, err := adm.FetchOffsets(ctx, "was-active")
		return err == nil && len(got) == 0
	})
	if got, _ := adm.FetchOffsets(ctx, "simple"); len(got) != 1 {
		t.Fatalf("simple group's newer offsets expired too: %v", got)
	}
	// The expired, empty group is gone entirely.
	waitFor(t, func() bool {
		l, err := adm.ListGroups(ctx)
		_, ok := l["was-active"]
		return err == nil && !ok
	})
	skew.Store(int64(91 * time.Minute))
	waitFor(t, func() bool {
		got, err := adm.FetchOffsets(ctx, "simple")
		return err == nil && len(got) == 0
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
