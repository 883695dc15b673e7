package coord_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/strata-broker/strata/coord"
)

// Tests of the Consul coordinator with several brokers on one prefix:
// controller failover and fencing, watches, many partitions, concurrent
// writers.

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
