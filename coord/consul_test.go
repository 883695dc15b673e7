package coord_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/testenv"
)

// Tests of what only the Consul coordinator has: sessions, several brokers,
// failover, garbage in the keyspace, Consul outages. Each runs on its own
// prefix of the shared agent, except the outage test, which stops its own.

func TestConsulSessionBoundToItsOwnCheck(t *testing.T) {
	cl := newCluster(t, nil)
	c := cl.open(1)
	register(t, c, 1, "a")
	info, _, err := cl.api.Session().Info(coord.SessionID(c), nil)
	if err != nil || info == nil {
		t.Fatalf("session: %+v %v", info, err)
	}
	// Not serfHealth: it is the agent's, shared by every broker using it.
	if len(info.NodeChecks) != 0 || len(info.Checks) != 0 {
		t.Fatalf("session bound to node checks %v / %v", info.NodeChecks, info.Checks)
	}
	if len(info.ServiceChecks) != 1 || info.ServiceChecks[0].ID != coord.CheckID(c) {
		t.Fatalf("session bound to %+v, want only %s", info.ServiceChecks, coord.CheckID(c))
	}
	if info.Behavior != api.SessionBehaviorDelete || info.LockDelay != time.Millisecond {
		t.Fatalf("behavior %q, lock delay %v", info.Behavior, info.LockDelay)
	}
	if p := cl.get("brokers/1"); p == nil || p.Session != info.ID {
		t.Fatalf("registration key %+v not held by the session", p)
	}
	if !c.SessionValidUntil().After(time.Now()) {
		t.Fatalf("session valid until %v, already past", c.SessionValidUntil())
	}
}

// TestConsulRegistrationLapses stops a broker's heartbeats as a SIGSTOP
// would: another broker sees its registration go within the session timeout
// (plus Consul's own delay), the lease stops advancing, and once heartbeats
// resume the broker is back under a new session with a greater epoch.
func TestConsulRegistrationLapses(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.open(1)
	first := register(t, a, 1, "a")
	obs := cl.open(2)
	events := watch(t, obs)
	waitEvent(t, events, "with node 1 registered", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && ok
	})
	oldSession := coord.SessionID(a)
	timeout := coord.ConsulOptionsOf(a).SessionTimeout

	coord.PauseHeartbeats(a, true)
	paused := time.Now()
	// When Consul deleted the key, as opposed to when the observer saw it.
	keyGone := make(chan time.Duration, 1)
	go func() {
		for time.Since(paused) < time.Minute {
			if p, _, err := cl.api.KV().Get(cl.prefix+"brokers/1", nil); err == nil && p == nil {
				keyGone <- time.Since(paused)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	waitEvent(t, events, "without node 1", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && !ok
	})
	lapse := time.Since(paused)
	var gone time.Duration
	select {
	case gone = <-keyGone:
	case <-time.After(45 * time.Second):
		t.Fatal("the registration key is still in Consul after the observer saw it go")
	}
	t.Logf("heartbeats stopped -> key deleted by Consul after %v, seen gone by another broker after %v (session timeout %v)",
		gone.Round(time.Millisecond), lapse.Round(time.Millisecond), timeout)
	if lapse > 3*timeout {
		// Not a failure (the machine may be loaded), but worth seeing why.
		t.Logf("slow lapse; Consul's log:\n%s", cl.agent.Log())
	}
	if until := a.SessionValidUntil(); until.After(paused.Add(timeout)) {
		t.Fatalf("lease %v runs past the last heartbeat plus the timeout (%v)", until, paused.Add(timeout))
	}

	coord.PauseHeartbeats(a, false)
	e := waitEvent(t, events, "with node 1 back", func(e coord.Event) bool {
		_, ok := brokerIn(e.Brokers, 1)
		return e.Kind == coord.BrokersChanged && ok
	})
	back, _ := brokerIn(e.Brokers, 1)
	if back.Epoch <= first.Epoch || back.Incarnation != "a" {
		t.Fatalf("re-registration %+v, first was %+v", back, first)
	}
	waitFor(t, "Self to show the new registration", func() bool { return a.Self().Epoch == back.Epoch })
	if coord.SessionID(a) == oldSession {
		t.Fatal("the lapsed session was kept")
	}
	waitFor(t, "the lease to run again", func() bool { return a.SessionValidUntil().After(time.Now()) })
}

func TestConsulEpochIncreasesOnReregistration(t *testing.T) {
	cl := newCluster(t, nil)
	a := cl.open(1)
	e1 := register(t, a, 1, "a").Epoch
	e2 := register(t, a, 1, "a").Epoch
	if e2 <= e1 {
		t.Fatalf("second registration epoch %d, first %d", e2, e1)
	}
	// Controlled shutdown rewrites the registration but keeps the epoch.
	if err := a.SetShuttingDown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := a.Self(); !s.ShuttingDown || s.Epoch != e2 {
		t.Fatalf("after SetShuttingDown: %+v (epoch was %d)", s, e2)
	}
	a.Close()
	if p := cl.get("brokers/1"); p != nil {
		t.Fatalf("registration survives Close: %+v", p)
	}
	b := cl.open(1)
	e3 := register(t, b, 1, "b").Epoch
	if e3 <= e2 {
		t.Fatalf("epoch after restart %d, before %d", e3, e2)
	}
	bs, _ := b.Brokers(context.Background())
	if got, ok := brokerIn(bs, 1); !ok || got.Epoch != e3 || got.Incarnation != "b" || got.ShuttingDown {
		t.Fatalf("brokers after restart: %+v", bs)
	}
}

// TestConsulRestartTakesOverNodeID: a new process with the node id of one
// that still runs (stalled: its heartbeats and watch are paused) takes the
// registration at once by destroying the old session, which fences the old
// process's writes; the old process, when it wakes, does not take it back.
func TestConsulRestartTakesOverNodeID(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	old := cl.open(1)
	oldReg := register(t, old, 1, "old")
	oldTerm := campaign(t, old)
	top, err := old.CreateTopic(ctx, coord.TopicMeta{Name: "t", Partitions: onePartition(1, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	oldSession := coord.SessionID(old)
	coord.PauseWatch(old, true)
	coord.PauseHeartbeats(old, true)

	nw := cl.open(1)
	newReg := register(t, nw, 1, "new")
	if newReg.Epoch <= oldReg.Epoch {
		t.Fatalf("new epoch %d, old %d", newReg.Epoch, oldReg.Epoch)
	}
	if p := cl.get("brokers/1"); p == nil || p.Session != coord.SessionID(nw) {
		t.Fatalf("registration key after the takeover: %+v", p)
	}
	if info, _, err := cl.api.Session().Info(oldSession, nil); err != nil || info != nil {
		t.Fatalf("old session still exists: %+v %v", info, err)
	}

	// The old process still believes it leads partition 0; its ISR write is
	// refused by Consul and lands nothing.
	p := top.Partitions[0].Clone()
	p.ISR = []int32{1}
	if _, err := old.UpdatePartition(ctx, "t", p, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
		t.Fatalf("leader write of the fenced process: %v", err)
	}
	if got := decodeISR(t, cl.get("partitions/t/0")); len(got) != 2 {
		t.Fatalf("fenced write landed: isr %v", got)
	}
	// Its controller lock went with its session.
	newTerm := campaign(t, nw)
	if newTerm.Epoch <= oldTerm.Epoch {
		t.Fatalf("new controller epoch %d, old %d", newTerm.Epoch, oldTerm.Epoch)
	}

	// The old process wakes: it loses its term, makes a new session, and
	// leaves the registration to the newer process.
	before := coord.Heartbeats(old)
	coord.PauseWatch(old, false)
	coord.PauseHeartbeats(old, false)
	select {
	case <-oldTerm.Done:
	case <-time.After(45 * time.Second):
		t.Fatal("the old controller term did not end")
	}
	waitFor(t, "the old process to have a new session and heartbeat on", func() bool {
		s := coord.SessionID(old)
		return s != "" && s != oldSession && coord.Heartbeats(old) >= before+3
	})
	if p := cl.get("brokers/1"); p == nil || p.Session != coord.SessionID(nw) {
		t.Fatalf("the old process took the registration back: %+v", p)
	}
	bs, _ := nw.Brokers(ctx)
	if b, ok := brokerIn(bs, 1); !ok || b.Incarnation != "new" || b.Epoch != newReg.Epoch {
		t.Fatalf("brokers: %+v", bs)
	}
}

func decodeISR(t *testing.T, p *api.KVPair) []int32 {
	t.Helper()
	if p == nil {
		t.Fatal("partition key missing")
	}
	var m coord.PartitionMeta
	if err := json.Unmarshal(p.Value, &m); err != nil {
		t.Fatal(err)
	}
	return m.ISR
}

// TestConsulControllerFailover: A holds the lock; B campaigns. A's session is
// destroyed while A is stalled (it has not noticed): B is elected with a
// greater epoch, A's controller writes fail and land nothing, and A's term
// ends when it wakes. Then B closes and A, campaigning again, takes over.
func TestConsulControllerFailover(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	a, b := cl.open(1), cl.open(2)
	ta := campaign(t, a)
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "kept", Partitions: onePartition(1, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		term coord.Term
		err  error
	}
	campaignAsync := func(c *coord.Consul) <-chan result {
		ch := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			term, err := c.Campaign(ctx)
			ch <- result{term, err}
		}()
		return ch
	}
	bWon := campaignAsync(b)

	coord.PauseWatch(a, true)
	coord.PauseHeartbeats(a, true)
	cl.destroySession(coord.SessionID(a))
	var tb coord.Term
	select {
	case r := <-bWon:
		if r.err != nil {
			t.Fatal(r.err)
		}
		tb = r.term
	case <-time.After(60 * time.Second):
		t.Fatal("B was not elected after A's session went")
	}
	if tb.Epoch <= ta.Epoch {
		t.Fatalf("B's epoch %d, A's %d", tb.Epoch, ta.Epoch)
	}
	if n, e := b.Controller(); n != 2 || e != tb.Epoch {
		t.Fatalf("B sees controller %d at %d", n, e)
	}

	// A does not know yet; Consul refuses its writes.
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "deposed", Partitions: onePartition(1, 1)}); !errors.Is(err, coord.ErrNotController) {
		t.Fatalf("deposed controller's create: %v", err)
	}
	if err := a.DeleteTopic(ctx, "kept"); !errors.Is(err, coord.ErrNotController) {
		t.Fatalf("deposed controller's delete: %v", err)
	}
	kept, err := a.Topic(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	el := kept.Partitions[0].Clone()
	el.Leader, el.LeaderEpoch = 2, 1
	if _, err := a.UpdatePartition(ctx, "kept", el, coord.AsController); !errors.Is(err, coord.ErrNotController) {
		t.Fatalf("deposed controller's election: %v", err)
	}
	if ks := cl.keys("topics/deposed"); len(ks) != 0 {
		t.Fatalf("deposed controller's topic landed: %v", ks)
	}
	if ks := cl.keys("partitions/deposed/"); len(ks) != 0 {
		t.Fatalf("deposed controller's partitions landed: %v", ks)
	}
	if cl.get("topics/kept") == nil {
		t.Fatal("deposed controller's delete landed")
	}
	if got, err := b.Topic(ctx, "kept"); err != nil || got.Partitions[0].Leader != 1 || got.Partitions[0].PartitionEpoch != 0 {
		t.Fatalf("deposed controller's election landed: %+v %v", got, err)
	}

	coord.PauseWatch(a, false)
	coord.PauseHeartbeats(a, false)
	select {
	case <-ta.Done:
	case <-time.After(45 * time.Second):
		t.Fatal("A's term did not end")
	}

	aWon := campaignAsync(a)
	b.Close()
	select {
	case <-tb.Done:
	default:
		t.Fatal("B's term still open after Close")
	}
	select {
	case r := <-aWon:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.term.Epoch <= tb.Epoch {
			t.Fatalf("A's new epoch %d, B's %d", r.term.Epoch, tb.Epoch)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("A was not elected after B closed")
	}
}

// TestConsulEarlierTermIsFenced: the controller key re-acquired with the
// same session starts a new term; a write from the earlier one (its holder
// has not noticed) fails and ends it.
func TestConsulEarlierTermIsFenced(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	a := cl.open(1)
	first := campaign(t, a)
	coord.PauseWatch(a, true)
	ok, _, err := cl.api.KV().Acquire(&api.KVPair{Key: cl.prefix + "controller", Value: []byte(`{"node_id":1,"term":"another"}`), Session: coord.SessionID(a)}, nil)
	if err != nil || !ok {
		t.Fatalf("re-acquiring with the same session: %v %v", ok, err)
	}
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "stale", Partitions: onePartition(1, 1)}); !errors.Is(err, coord.ErrNotController) {
		t.Fatalf("write of the earlier term: %v", err)
	}
	select {
	case <-first.Done:
	default:
		t.Fatal("the earlier term is still open after Consul refused it")
	}
	if ks := cl.keys("partitions/stale/"); len(ks) != 0 {
		t.Fatalf("earlier term's write landed: %v", ks)
	}
	coord.PauseWatch(a, false)
	second := campaign(t, a)
	if second.Epoch <= first.Epoch {
		t.Fatalf("new term's epoch %d, earlier %d", second.Epoch, first.Epoch)
	}
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "fresh", Partitions: onePartition(1, 1)}); err != nil {
		t.Fatal(err)
	}
}

// TestConsulLeaderWriteNeedsLiveSession: a leader whose session is gone
// (it has not noticed) cannot change its ISR.
func TestConsulLeaderWriteNeedsLiveSession(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	a := cl.open(1)
	register(t, a, 1, "a")
	campaign(t, a)
	top, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "t", Partitions: onePartition(1, 1, 2)})
	if err != nil {
		t.Fatal(err)
	}
	coord.PauseWatch(a, true)
	coord.PauseHeartbeats(a, true)
	cl.destroySession(coord.SessionID(a))
	p := top.Partitions[0].Clone()
	p.ISR = []int32{1}
	if _, err := a.UpdatePartition(ctx, "t", p, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
		t.Fatalf("ISR write without a session: %v", err)
	}
	if got := decodeISR(t, cl.get("partitions/t/0")); len(got) != 2 {
		t.Fatalf("write landed: isr %v", got)
	}
}

// TestConsulWatchSeesOtherBroker: every change the controller makes reaches
// another broker's watch with the stored contents.
func TestConsulWatchSeesOtherBroker(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	a := cl.open(1)
	register(t, a, 1, "a")
	ta := campaign(t, a)
	b := cl.open(2)
	events := watch(t, b)
	if e := nextEvent(t, events); e.Kind != coord.BrokersChanged || len(e.Brokers) != 1 || e.Brokers[0].NodeID != 1 {
		t.Fatalf("first event %+v", e)
	}
	if e := nextEvent(t, events); e.Kind != coord.ControllerChanged || e.Controller != 1 || e.ControllerEpoch != ta.Epoch {
		t.Fatalf("second event %+v, want controller 1 at %d", e, ta.Epoch)
	}
	if b.ClusterID() == "" || b.ClusterID() != a.ClusterID() {
		t.Fatalf("cluster ids %q and %q", a.ClusterID(), b.ClusterID())
	}

	parts := append(onePartition(1, 1, 2), onePartition(2, 2, 1)...)
	created, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "w", Configs: map[string]string{"cleanup.policy": "compact"}, Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	e := nextEvent(t, events)
	if e.Kind != coord.TopicCreated || e.Topic.ID != created.ID || len(e.Topic.Partitions) != 2 ||
		e.Topic.Partitions[1].Leader != 2 || e.Topic.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("create seen as %+v", e)
	}
	upd := created.Clone()
	upd.Configs["retention.ms"] = "5"
	if _, err := a.UpdateTopic(ctx, upd); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); e.Kind != coord.TopicUpdated || e.Topic.Version != 2 || e.Topic.Configs["retention.ms"] != "5" {
		t.Fatalf("update seen as %+v", e)
	}
	p := created.Partitions[1].Clone()
	p.ISR = []int32{2}
	if _, err := a.UpdatePartition(ctx, "w", p, coord.AsController); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); e.Kind != coord.TopicUpdated || e.Topic.Partitions[1].PartitionEpoch != 1 || len(e.Topic.Partitions[1].ISR) != 1 {
		t.Fatalf("partition change seen as %+v", e)
	}
	if err := a.DeleteTopic(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, events); e.Kind != coord.TopicDeleted || e.Topic.Name != "w" {
		t.Fatalf("delete seen as %+v", e)
	}
	register(t, b, 2, "b")
	e = waitEvent(t, events, "with both brokers", func(e coord.Event) bool { return len(e.Brokers) == 2 })
	if e.Brokers[0].NodeID != 1 || e.Brokers[1].NodeID != 2 || e.Brokers[1].Port != 9094 {
		t.Fatalf("brokers %+v", e.Brokers)
	}
	a.Close()
	e = waitEvent(t, events, "controller gone", func(e coord.Event) bool { return e.Kind == coord.ControllerChanged })
	if e.Controller != -1 {
		t.Fatalf("after the controller closed: %+v", e)
	}
}

func TestConsulManyPartitions(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	c := openController(t, cl.opts(1))
	// More than two transactions' worth of partition keys.
	var parts []coord.PartitionMeta
	for i := 0; i < 130; i++ {
		parts = append(parts, onePartition(1, 1)...)
	}
	created, err := c.CreateTopic(ctx, coord.TopicMeta{Name: "wide", Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.keys("partitions/wide/")) != 130 {
		t.Fatalf("%d partition keys", len(cl.keys("partitions/wide/")))
	}
	upd := created.Clone()
	for i := 130; i < 200; i++ {
		p := onePartition(1, 1)[0]
		p.Partition = int32(i)
		upd.Partitions = append(upd.Partitions, p)
	}
	if _, err := c.UpdateTopic(ctx, upd); err != nil {
		t.Fatal(err)
	}
	other := cl.open(2)
	waitFor(t, "another broker to see 200 partitions", func() bool {
		got, err := other.Topic(ctx, "wide")
		return err == nil && len(got.Partitions) == 200 && got.Partitions[199].Partition == 199
	})
	if err := c.DeleteTopic(ctx, "wide"); err != nil {
		t.Fatal(err)
	}
	if ks := append(cl.keys("partitions/wide/"), cl.keys("topic-ids/")...); len(ks) != 0 {
		t.Fatalf("left after delete: %v", ks)
	}
}

// TestConsulPartitionsDoNotConflict: ISR changes of different partitions of
// one topic, at the same time, all land.
func TestConsulPartitionsDoNotConflict(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	c := openController(t, cl.opts(1))
	var parts []coord.PartitionMeta
	for i := 0; i < 8; i++ {
		parts = append(parts, onePartition(1, 1, 2)...)
	}
	created, err := c.CreateTopic(ctx, coord.TopicMeta{Name: "t", Partitions: parts})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(parts))
	for _, p := range created.Partitions {
		wg.Add(1)
		go func(p coord.PartitionMeta) {
			defer wg.Done()
			p.ISR = []int32{1}
			_, err := c.UpdatePartition(ctx, "t", p, coord.AsController)
			errs <- err
		}(p.Clone())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := c.Topic(ctx, "t")
	for _, p := range got.Partitions {
		if p.PartitionEpoch != 1 || len(p.ISR) != 1 {
			t.Fatalf("partition %+v", p)
		}
	}
}

func TestConsulProducerIDsAcrossBrokers(t *testing.T) {
	cl := newCluster(t, nil)
	a, b := cl.open(1), cl.open(2)
	var mu sync.Mutex
	seen := map[int64]int32{}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, c := range []*coord.Consul{a, b} {
		wg.Add(1)
		go func(c *coord.Consul) {
			defer wg.Done()
			node := coord.ConsulOptionsOf(c).NodeID
			for i := 0; i < 15; i++ {
				first, err := c.AllocateProducerIDs(context.Background(), 5)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for id := first; id < first+5; id++ {
					if n, dup := seen[id]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("producer id %d given to nodes %d and %d", id, n, node)
						return
					}
					seen[id] = node
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != 150 {
		t.Fatalf("%d ids handed out", len(seen))
	}
}

// TestConsulGarbageIsSkipped writes what a bug or an operator might leave
// under the prefix. Readers log each entry and skip it; a partition whose
// value turns to garbage keeps its last readable state rather than making
// its topic vanish; a new controller removes stray partition keys.
func TestConsulGarbageIsSkipped(t *testing.T) {
	ctx := context.Background()
	cl := newCluster(t, nil)
	var log1 logBuffer
	o := cl.opts(1)
	o.Logger = slog.New(slog.NewTextHandler(&log1, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := openController(t, o)
	events := watch(t, a)
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "good", Partitions: onePartition(1, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "frozen", Partitions: onePartition(1, 1, 2)}); err != nil {
		t.Fatal(err)
	}
	garbage := map[string]string{
		"topics/bad":          "{not json",
		"topics/nulls":        "null",
		"what/ever":           "x",
		"brokers/7":           `{"node_id":8,"host":"h","port":1}`,
		"brokers/x":           `{"node_id":1,"host":"h","port":1}`,
		"partitions/good/5":   `{"partition":5,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":[1],"isr":[1]}`,
		"partitions/frozen/0": `{"partition":0,"leader":1,"isr":[1]}`,
		"producer-ids":        "-3",
	}
	for k, v := range garbage {
		cl.put(k, v)
	}
	// Left by an interrupted CreateTopic: ignored, not garbage.
	cl.put("partitions/ghost/0", `{"partition":0,"leader":1,"leader_epoch":0,"partition_epoch":0,"replicas":[1],"isr":[1]}`)
	// A valid change after the garbage still comes through.
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "later", Partitions: onePartition(1, 1)}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, "TopicCreated later", func(e coord.Event) bool { return e.Kind == coord.TopicCreated && e.Topic.Name == "later" })
	waitFor(t, "every garbage key to be logged", func() bool {
		s := log1.String()
		for k := range garbage {
			if !strings.Contains(s, cl.prefix+k) {
				return false
			}
		}
		return true
	})
	if strings.Contains(log1.String(), "partitions/ghost") {
		t.Fatal("partition keys without a topic key logged as garbage (an interrupted create leaves them)")
	}
	check := func(c *coord.Consul, wantFrozen bool) {
		t.Helper()
		ts, _ := c.Topics(ctx)
		var names []string
		for _, tm := range ts {
			names = append(names, tm.Name)
			if tm.Name == "frozen" && (len(tm.Partitions[0].ISR) != 2 || tm.Partitions[0].LeaderEpoch != 0) {
				t.Fatalf("frozen partition changed to %+v", tm.Partitions[0])
			}
			if tm.Name == "good" && len(tm.Partitions) != 1 {
				t.Fatalf("good has %d partitions", len(tm.Partitions))
			}
		}
		want := "good,later"
		if wantFrozen {
			want = "frozen,good,later"
		}
		if got := strings.Join(names, ","); got != want {
			t.Fatalf("topics %s, want %s", got, want)
		}
		if bs, _ := c.Brokers(ctx); len(bs) != 0 {
			t.Fatalf("garbage registrations read as %+v", bs)
		}
	}
	// a had read "frozen" before its partition turned to garbage: it keeps
	// the last readable state. A broker that never saw it does not show it.
	check(a, true)
	var log2 logBuffer
	o2 := cl.opts(2)
	o2.Logger = slog.New(slog.NewTextHandler(&log2, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := openConsul(t, o2)
	check(b, false)
	if !strings.Contains(log2.String(), "lacks partition keys") {
		t.Fatalf("incomplete topic not logged:\n%s", log2.String())
	}
	if _, err := b.AllocateProducerIDs(ctx, 1); err == nil {
		t.Fatal("allocated producer ids from a garbage counter")
	}

	// A new controller removes the stray partition keys.
	a.Close()
	campaign(t, b)
	waitFor(t, "stray partition keys to be removed", func() bool {
		return len(cl.keys("partitions/ghost/")) == 0 && cl.get("partitions/good/5") == nil
	})
}

// TestConsulOutage stops the Consul agent under a registered controller:
// reads keep answering from the snapshot, writes fail with
// ErrConsulUnavailable, the lease runs out; after Consul returns the broker
// is registered again, can campaign, and writes work.
func TestConsulOutage(t *testing.T) {
	ctx := context.Background()
	agent := testenv.StartConsul(t)
	cl := newCluster(t, agent)
	a := cl.open(1)
	register(t, a, 1, "a")
	term := campaign(t, a)
	created, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "kept", Partitions: onePartition(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cid := a.ClusterID()

	agent.Stop()
	if got, err := a.Topic(ctx, "kept"); err != nil || got.ID != created.ID {
		t.Fatalf("read during the outage: %+v %v", got, err)
	}
	if bs, _ := a.Brokers(ctx); len(bs) != 1 || bs[0].NodeID != 1 {
		t.Fatalf("brokers during the outage: %+v", bs)
	}
	if n, e := a.Controller(); n != 1 || e != term.Epoch || a.ClusterID() != cid {
		t.Fatalf("controller during the outage: %d at %d", n, e)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = a.CreateTopic(wctx, coord.TopicMeta{Name: "lost", Partitions: onePartition(1, 1)})
	cancel()
	if !errors.Is(err, coord.ErrConsulUnavailable) {
		t.Fatalf("create during the outage: %v", err)
	}
	wctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	_, err = a.AllocateProducerIDs(wctx, 1)
	cancel()
	if !errors.Is(err, coord.ErrConsulUnavailable) {
		t.Fatalf("producer ids during the outage: %v", err)
	}
	waitFor(t, "the lease to run out", func() bool { return time.Now().After(a.SessionValidUntil()) })

	agent.Start()
	waitFor(t, "the registration to be back under a live session", func() bool {
		p, _, err := cl.api.KV().Get(cl.prefix+"brokers/1", nil)
		return err == nil && p != nil && p.Session != "" && p.Session == coord.SessionID(a) &&
			a.SessionValidUntil().After(time.Now())
	})
	term2 := campaign(t, a)
	if term2.Epoch < term.Epoch {
		t.Fatalf("controller epoch went back: %d < %d", term2.Epoch, term.Epoch)
	}
	if _, err := a.CreateTopic(ctx, coord.TopicMeta{Name: "after", Partitions: onePartition(1, 1)}); err != nil {
		t.Fatal(err)
	}
	ts, _ := a.Topics(ctx)
	if len(ts) != 2 || ts[0].Name != "after" || ts[1].Name != "kept" || a.ClusterID() != cid {
		t.Fatalf("after the outage: %+v, cluster %q", ts, a.ClusterID())
	}
}

func TestConsulOptions(t *testing.T) {
	o := coord.ConsulOptions{Prefix: "mine"}
	o.EnsureDefaults()
	if o.Prefix != "mine/" || o.SessionTimeout != 2500*time.Millisecond || o.HeartbeatInterval != 500*time.Millisecond || o.Logger == nil {
		t.Fatalf("defaults: %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []coord.ConsulOptions{
		{Prefix: "/abs/"},
		{NodeID: -1},
		{SessionTimeout: time.Second, HeartbeatInterval: 600 * time.Millisecond},
	} {
		bad.EnsureDefaults()
		if err := bad.Validate(); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
	// Nothing listening: OpenConsul gives up when ctx ends, with a clear error.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := coord.OpenConsul(ctx, coord.ConsulOptions{Address: "127.0.0.1:1", Logger: testLogger(t)}); !errors.Is(err, coord.ErrConsulUnavailable) {
		t.Fatalf("open without Consul: %v", err)
	}
	// A coordinator for one node id does not register another.
	cl := newCluster(t, nil)
	c := cl.open(1)
	if _, err := c.RegisterBroker(context.Background(), coord.BrokerInfo{NodeID: 2, Host: "h", Port: 1}); err == nil {
		t.Fatal("registered node 2 through node 1's coordinator")
	}
	if _, err := c.CreateTopic(context.Background(), coord.TopicMeta{Name: "x"}); !errors.Is(err, coord.ErrNotController) {
		t.Fatalf("create without campaigning: %v", err)
	}
}
