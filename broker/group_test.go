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

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

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

// groupOpts are kgo options for a fast-failing group member.
func groupOpts(group, topic string, balancer kgo.GroupBalancer) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.SessionTimeout(1500 * time.Millisecond),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
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

// waitForAssignment waits until the group is Stable with want members whose
// assignments each hold per partitions of topic, all different.
func waitForAssignment(t *testing.T, adm *kadm.Client, group, topic string, want, per int) kadm.DescribedGroup {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		dg, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			g := dg[group]
			last = fmt.Sprintf("state %s, %d members", g.State, len(g.Members))
			if g.Err == nil && g.State == "Stable" && len(g.Members) == want {
				seen := map[int32]bool{}
				ok := true
				for _, m := range g.Members {
					ca, _ := m.Assigned.AsConsumer()
					n := 0
					for _, at := range ca.Topics {
						if at.Topic != topic {
							continue
						}
						for _, p := range at.Partitions {
							if seen[p] {
								ok = false
							}
							seen[p] = true
							n++
						}
					}
					if n != per {
						ok = false
					}
				}
				if ok {
					return g
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("group %s never reached %d members with %d partitions each (last: %s)", group, want, per, last)
	return kadm.DescribedGroup{}
}

func TestGroupThreeConsumersSixPartitions(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{Settings: groupSettings()})
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"range", kgo.RangeBalancer()}, {"roundrobin", kgo.RoundRobinBalancer()}, {"sticky", kgo.StickyBalancer()}, {"cooperative-sticky", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			topic, group := "three-"+bal.name, "g-three-"+bal.name
			testenv.CreateTopic(t, b.Addr, topic, 6, nil)
			adm := kadm.NewClient(testenv.Client(t, b.Addr))
			var cls []*kgo.Client
			for i := 0; i < 3; i++ {
				cl := testenv.Client(t, b.Addr, groupOpts(group, topic, bal.b)...)
				pollUntilClosed(t, cl, nil)
				cls = append(cls, cl)
			}
			waitForAssignment(t, adm, group, topic, 3, 2)
			// One leaves: the other two split all six.
			cls[2].Close()
			waitForAssignment(t, adm, group, topic, 2, 3)
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

// TestGroupCrashedMemberResumesFromCommit: three members commit after
// processing; one crashes (no LeaveGroup). After its session times out its
// partitions move and the survivors resume from its last commit, so every
// record is processed at least once and the final commits reach the end.
func TestGroupCrashedMemberResumesFromCommit(t *testing.T) {
	for _, bal := range []struct {
		name string
		b    kgo.GroupBalancer
	}{{"eager", kgo.RangeBalancer()}, {"cooperative", kgo.CooperativeStickyBalancer()}} {
		t.Run(bal.name, func(t *testing.T) {
			b := testenv.StartBroker(t, broker.Options{Settings: groupSettings()})
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
			var crashedProcessed atomic.Int64
			start := func(d *crashableDialer, slow bool) *kgo.Client {
				opts := append(groupOpts(group, topic, bal.b), kgo.DisableAutoCommit(), kgo.FetchMaxBytes(2000), kgo.FetchMaxPartitionBytes(500))
				if d != nil {
					opts = append(opts, kgo.Dialer(d.dial))
				}
				cl := testenv.Client(t, b.Addr, opts...)
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
						if d != nil {
							crashedProcessed.Add(int64(len(recs)))
						}
						if err := cl.CommitRecords(ctx, recs...); err != nil && d == nil {
							t.Logf("commit: %v", err)
						}
						if slow {
							time.Sleep(20 * time.Millisecond)
						}
					}
				}()
				return cl
			}
			d := &crashableDialer{}
			victim := start(d, true)
			adm := kadm.NewClient(testenv.Client(t, b.Addr))
			waitForAssignment(t, adm, group, topic, 1, 6)
			for crashedProcessed.Load() < 200 {
				time.Sleep(10 * time.Millisecond)
			}
			d.crash()
			go victim.Close() // its LeaveGroup cannot get through
			start(nil, false)
			start(nil, false)

			// Everything is eventually processed and committed.
			deadline := time.Now().Add(30 * time.Second)
			for {
				mu.Lock()
				got := len(processed)
				mu.Unlock()
				if got == n {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("processed %d distinct records of %d", got, n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			for time.Now().Before(deadline) {
				offs, err := adm.FetchOffsets(ctx, group)
				if err == nil && offsetsReach(offs, ends) {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatal("committed offsets never reached the end offsets")
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
// on the same data directory, and reads the same offsets back; a consumer in
// the group then resumes from them.
func TestGroupOffsetsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartBroker(t, broker.Options{DataDir: dir, Settings: groupSettings()})
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
	b2 := testenv.StartBroker(t, broker.Options{DataDir: dir, Settings: groupSettings()})
	adm2 := kadm.NewClient(testenv.Client(t, b2.Addr))
	got, err := adm2.FetchOffsets(ctx, group)
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
// carry on and no rebalance happens.
func TestGroupMembershipSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := testenv.StartBroker(t, broker.Options{DataDir: dir, Settings: groupSettings()})
	addr := b.Addr
	topic, group := "restart-members", "g-restart-members"
	testenv.CreateTopic(t, addr, topic, 2, nil)
	var revoked atomic.Int32
	cl := testenv.Client(t, addr, append(groupOpts(group, topic, kgo.RangeBalancer()),
		kgo.SessionTimeout(6*time.Second),
		kgo.OnPartitionsRevoked(func(context.Context, *kgo.Client, map[string][]int32) { revoked.Add(1) }))...)
	pollUntilClosed(t, cl, nil)
	adm := kadm.NewClient(testenv.Client(t, addr))
	before := waitForAssignment(t, adm, group, topic, 1, 2)
	revokedBefore := revoked.Load()
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	testenv.StartBroker(t, broker.Options{DataDir: dir, Listen: addr, Settings: groupSettings()})
	after := waitForAssignment(t, adm, group, topic, 1, 2)
	if after.Members[0].MemberID != before.Members[0].MemberID {
		t.Fatalf("member id changed across the restart: %s → %s", before.Members[0].MemberID, after.Members[0].MemberID)
	}
	time.Sleep(500 * time.Millisecond) // several heartbeats
	if n := revoked.Load(); n != revokedBefore {
		t.Fatalf("a rebalance revoked partitions %d times across the restart", n-revokedBefore)
	}
	dg, err := adm.DescribeGroups(testenv.Context(t, 5*time.Second), group)
	if err != nil || dg[group].State != "Stable" {
		t.Fatalf("after heartbeats: %v %+v", err, dg[group])
	}
}
