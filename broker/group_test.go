package broker_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/testenv"
)

// Consumer-group tests with real franz-go clients. The broker runs on a
// fake clock, so session and rebalance timeouts pass only when a test steps
// it; the tests wait on events — group responses the clients read, records
// they process — never on sleeps.

// groupSettings make rebalances fast enough for tests: no initial delay,
// short sessions allowed, few __consumer_offsets partitions.
func groupSettings(extra ...string) map[string]string {
	s := map[string]string{
		"group.initial.rebalance.delay.ms": "0",
		"group.min.session.timeout.ms":     "300",
		"offsets.topic.num.partitions":     "4",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i]] = extra[i+1]
	}
	return s
}

// startGroupBroker runs a broker on a fake clock (returned) with groupSettings.
func startGroupBroker(t *testing.T, dir string, extra ...string) (*testenv.InProcess, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(time.Now())
	return testenv.StartBroker(t, broker.Options{DataDir: dir, Clock: fake, Settings: groupSettings(extra...)}), fake
}

// groupEvents hears the group responses kgo clients read (JoinGroup,
// SyncGroup, Heartbeat, LeaveGroup, OffsetCommit): each one is a moment the
// group may have changed, so waits re-check on it. Members heartbeat every
// 100 ms while in a group, so a live group keeps producing events.
type groupEvents struct {
	ch         chan struct{}
	heartbeats atomic.Int64
}

var _ kgo.HookBrokerRead = (*groupEvents)(nil)

func newGroupEvents() *groupEvents { return &groupEvents{ch: make(chan struct{}, 1)} }

func (e *groupEvents) OnBrokerRead(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	switch kmsg.Key(key) {
	case kmsg.JoinGroup, kmsg.SyncGroup, kmsg.Heartbeat, kmsg.LeaveGroup, kmsg.OffsetCommit:
	default:
		return
	}
	if err != nil {
		return
	}
	if kmsg.Key(key) == kmsg.Heartbeat {
		e.heartbeats.Add(1)
	}
	select {
	case e.ch <- struct{}{}:
	default:
	}
}

// until re-checks cond on every event until it holds or 30 s pass.
func (e *groupEvents) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-e.ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// heartbeatsAfter waits until n more heartbeat responses than now were read.
func (e *groupEvents) heartbeatsAfter(t *testing.T, n int64) {
	t.Helper()
	target := e.heartbeats.Load() + n
	e.until(t, fmt.Sprintf("%d heartbeats", n), func() bool { return e.heartbeats.Load() >= target })
}

// groupOpts are kgo options for a fast-failing group member reporting to ev.
func groupOpts(ev *groupEvents, group, topic string, balancer kgo.GroupBalancer) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.SessionTimeout(1500 * time.Millisecond),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.WithHooks(ev),
	}
}

// pollUntilClosed polls cl in the background until the test ends or the
// client closes, handing records to fn.
func pollUntilClosed(t *testing.T, cl *kgo.Client, fn func(*kgo.Record)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() || ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if fn != nil {
					fn(r)
				}
			})
		}
	}()
}

// assignedAs reports whether the group is Stable with want members whose
// assignments each hold per partitions of topic, all different.
func assignedAs(g kadm.DescribedGroup, topic string, want, per int) bool {
	if g.Err != nil || g.State != "Stable" || len(g.Members) != want {
		return false
	}
	seen := map[int32]bool{}
	for _, m := range g.Members {
		ca, _ := m.Assigned.AsConsumer()
		n := 0
		for _, at := range ca.Topics {
			if at.Topic != topic {
				continue
			}
			for _, p := range at.Partitions {
				if seen[p] {
					return false
				}
				seen[p] = true
				n++
			}
		}
		if n != per {
			return false
		}
	}
	return true
}

func describe(t *testing.T, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	dg, err := adm.DescribeGroups(testenv.Context(t, 10*time.Second), group)
	if err != nil {
		return kadm.DescribedGroup{Err: err}
	}
	return dg[group]
}

// waitForAssignment waits, on ev's events, until the group is Stable with
// want members holding per partitions of topic each.
func waitForAssignment(t *testing.T, ev *groupEvents, adm *kadm.Client, group, topic string, want, per int) kadm.DescribedGroup {
	t.Helper()
	var g kadm.DescribedGroup
	ev.until(t, fmt.Sprintf("group %s: %d members with %d partitions each", group, want, per), func() bool {
		g = describe(t, adm, group)
		return assignedAs(g, topic, want, per)
	})
	return g
}

func TestGroupThreeConsumersSixPartitions(t *testing.T) {
	b, _ := startGroupBroker(t, "")
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer()}, {"roundrobin", kgo.RoundRobinBalancer()}, {"sticky", kgo.StickyBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			topic, group := "three-"+bal.name, "g-three-"+bal.name
			testenv.CreateTopic(t, b.Addr, topic, 6, nil)
			adm := kadm.NewClient(testenv.Client(t, b.Addr))
			ev := newGroupEvents()
			var cls []*kgo.Client
			for i := 0; i < 3; i++ {
				cl := testenv.Client(t, b.Addr, groupOpts(ev, group, topic, bal.b)...)
				pollUntilClosed(t, cl, nil)
				cls = append(cls, cl)
			}
			waitForAssignment(t, ev, adm, group, topic, 3, 2)
			// One leaves: the other two split all six.
			cls[2].Close()
			waitForAssignment(t, ev, adm, group, topic, 2, 3)
		})
	}
}

// crashableDialer hands kgo connections the test can cut, so a client can
// "crash": no LeaveGroup reaches the broker, and its session must expire.
type crashableDialer struct {
	mu      sync.Mutex
	crashed bool
	conns   []net.Conn
}

func (d *crashableDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.crashed {
		return nil, fmt.Errorf("crashed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, host)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *crashableDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crashed = true
	for _, c := range d.conns {
		c.Close()
	}
}

func memberIDs(g kadm.DescribedGroup) map[string]bool {
	ids := map[string]bool{}
	for _, m := range g.Members {
		ids[m.MemberID] = true
	}
	return ids
}

// TestGroupCrashedMemberResumesFromCommit: a member processes and commits
// part of the topic, then crashes (no LeaveGroup). Stepping the broker's
// clock past its session timeout removes it; two new members take its
// partitions and resume from its commits, so every record is processed at
// least once and the final commits reach the end.
func TestGroupCrashedMemberResumesFromCommit(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"eager", kgo.RangeBalancer()}, {"cooperative", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			b, fake := startGroupBroker(t, "")
			topic, group := "crash", "g-crash"
			testenv.CreateTopic(t, b.Addr, topic, 6, nil)
			const n = 3000
			prod := testenv.Client(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			ctx := testenv.Context(t, 60*time.Second)
			for i := 0; i < n; i++ {
				prod.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
			}
			if err := prod.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			var mu sync.Mutex
			processed := map[string]int{}
			progress := make(chan struct{}, 1)
			ev := newGroupEvents()
			adm := kadm.NewClient(testenv.Client(t, b.Addr))

			// The victim processes and commits a few small fetches, then
			// stops polling (its heartbeats go on until the crash).
			d := &crashableDialer{}
			victimDone := make(chan struct{})
			victim := testenv.Client(t, b.Addr, append(groupOpts(ev, group, topic, bal.b),
				kgo.DisableAutoCommit(), kgo.FetchMaxBytes(2000), kgo.FetchMaxPartitionBytes(500), kgo.Dialer(d.dial))...)
			go func() {
				defer close(victimDone)
				for seen := 0; seen < 200; {
					fs := victim.PollFetches(ctx)
					if fs.IsClientClosed() || ctx.Err() != nil {
						return
					}
					recs := fs.Records()
					mu.Lock()
					for _, r := range recs {
						processed[string(r.Value)]++
					}
					mu.Unlock()
					seen += len(recs)
					if err := victim.CommitRecords(ctx, recs...); err != nil {
						t.Errorf("victim commit: %v", err)
					}
				}
			}()
			victimGroup := waitForAssignment(t, ev, adm, group, topic, 1, 6)
			<-victimDone
			d.crash()
			go victim.Close() // its LeaveGroup cannot get through

			// Survivors have long sessions: only the victim's runs out
			// when the clock is stepped.
			survivor := func() {
				cl := testenv.Client(t, b.Addr, append(groupOpts(ev, group, topic, bal.b), kgo.DisableAutoCommit(), kgo.SessionTimeout(30*time.Second))...)
				go func() {
					for {
						fs := cl.PollFetches(ctx)
						if fs.IsClientClosed() || ctx.Err() != nil {
							return
						}
						recs := fs.Records()
						mu.Lock()
						for _, r := range recs {
							processed[string(r.Value)]++
						}
						mu.Unlock()
						if err := cl.CommitRecords(ctx, recs...); err != nil {
							t.Logf("commit: %v", err)
						}
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				}()
			}
			survivor()
			survivor()
			// Step past the victim's 1.5 s session; a heartbeat of its
			// still in flight at the crash could re-arm it once, so step
			// again while it is still listed (each check is a response).
			victimID := victimGroup.Members[0].MemberID
			for i := 0; ; i++ {
				if i == 10 {
					t.Fatal("the crashed member never expired")
				}
				fake.Advance(1600 * time.Millisecond)
				if !memberIDs(describe(t, adm, group))[victimID] {
					break
				}
			}
			waitForAssignment(t, ev, adm, group, topic, 2, 3)

			// Everything is eventually processed and committed.
			waitProgress := func(what string, cond func() bool) {
				t.Helper()
				deadline := time.NewTimer(30 * time.Second)
				defer deadline.Stop()
				for !cond() {
					select {
					case <-progress:
					case <-deadline.C:
						t.Fatalf("timed out waiting for %s", what)
					}
				}
			}
			waitProgress("every record processed", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(processed) == n
			})
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			waitProgress("commits at the end offsets", func() bool {
				offs, err := adm.FetchOffsets(ctx, group)
				return err == nil && offsetsReach(offs, ends)
			})
		})
	}
}

func offsetsReach(offs kadm.OffsetResponses, ends kadm.ListedOffsets) bool {
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		o, found := offs.Lookup(e.Topic, e.Partition)
		if !found || o.At != e.Offset {
			ok = false
		}
	})
	return ok
}

// TestGroupOffsetsSurviveRestart commits, stops the broker, starts a new one
// on the same data directory, and reads the same offsets back (after the
// new coordinator loads __consumer_offsets).
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b, _ := startGroupBroker(t, dir)
	topic, group := "restart-commits", "g-restart"
	testenv.CreateTopic(t, b.Addr, topic, 3, nil)
	ctx := testenv.Context(t, 30*time.Second)
	adm := kadm.NewClient(testenv.Client(t, b.Addr))
	want := kadm.Offsets{}
	for p := int32(0); p < 3; p++ {
		want.AddOffset(topic, p, int64(10*(p+1)), -1)
	}
	resp, err := adm.CommitOffsets(ctx, group, want)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b2, _ := startGroupBroker(t, dir)
	adm2 := kadm.NewClient(testenv.Client(t, b2.Addr))
	got, err := adm2.FetchOffsets(ctx, group) // kgo retries COORDINATOR_LOAD_IN_PROGRESS
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 3; p++ {
		o, ok := got.Lookup(topic, p)
		if !ok || o.At != int64(10*(p+1)) {
			t.Fatalf("partition %d: got %+v, want %d", p, o, 10*(p+1))
		}
	}
}

// TestGroupMembershipSurvivesRestart: the broker restarts (same address,
// same data directory) under a stable group; the group's metadata record
// brings the member back with its generation, so the consumer's heartbeats
// carry on and no rebalance happens — even as the new broker's clock is
// stepped well past the member's session timeout, heartbeat by heartbeat.
func TestGroupMembershipSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	fake := clock.NewFake(time.Now())
	opts := broker.Options{DataDir: dir, Clock: fake, Settings: groupSettings()}
	b := testenv.StartBroker(t, opts)
	addr := b.Addr
	topic, group := "restart-members", "g-restart-members"
	testenv.CreateTopic(t, addr, topic, 2, nil)
	var revoked atomic.Int32
	ev := newGroupEvents()
	cl := testenv.Client(t, addr, append(groupOpts(ev, group, topic, kgo.RangeBalancer()),
		kgo.SessionTimeout(6*time.Second),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { revoked.Add(1) }))...)
	pollUntilClosed(t, cl, nil)
	adm := kadm.NewClient(testenv.Client(t, addr))
	before := waitForAssignment(t, ev, adm, group, topic, 1, 2)
	revokedBefore := revoked.Load()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	opts.Listen = addr
	testenv.StartBroker(t, opts)
	after := waitForAssignment(t, ev, adm, group, topic, 1, 2)
	if after.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("member id changed across the restart: %s → %s", before.Members[0].MemberID, after.Members[0].MemberID)
	}
	// 4 s steps, each followed by heartbeats (the second is certainly
	// handled after the step): 12 s in all against a 6 s session.
	for i := 0; i < 3; i++ {
		fake.Advance(4 * time.Second)
		ev.heartbeatsAfter(t, 2)
	}
	if n := revoked.Load(); n != revokedBefore {
		t.Fatalf("a rebalance revoked partitions %d times across the restart", n-revokedBefore)
	}
	if g := describe(t, adm, group); g.State != "Stable" || !memberIDs(g)[before.Members[0].MemberID] {
		t.Fatalf("after heartbeats: %+v", g)
	}
}
