package coord_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/testenv"
)

// The shared suite: every test here runs against each implementation. It
// lives in package coord_test because the Consul implementation's tests need
// testenv, which imports broker, which imports coord.

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopSharedConsul()
	os.Exit(code)
}

// implementation is one Coordinator to run the suite against. open returns a
// single-broker coordinator that holds the controller role (Embedded always
// does; Consul campaigns), node id 1. reopen simulates a restart on the same
// durable state: the embedded data directory, or the Consul prefix.
type implementation struct {
	name   string
	open   func(t *testing.T) coord.Coordinator
	reopen func(t *testing.T, old coord.Coordinator) coord.Coordinator
}

func implementations(t *testing.T) []implementation {
	return []implementation{{
		name: "embedded",
		open: func(t *testing.T) coord.Coordinator {
			c, err := coord.OpenEmbedded(t.TempDir(), 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		},
		reopen: func(t *testing.T, old coord.Coordinator) coord.Coordinator {
			e := old.(*coord.Embedded)
			e.Close()
			c, err := coord.OpenEmbedded(coord.EmbeddedDir(e), 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		},
	}, {
		name: "consul",
		open: func(t *testing.T) coord.Coordinator {
			agent := testenv.SharedConsul(t)
			return openController(t, coord.ConsulOptions{Address: agent.Addr, Prefix: testPrefix(t), NodeID: 1})
		},
		reopen: func(t *testing.T, old coord.Coordinator) coord.Coordinator {
			c := old.(*coord.Consul)
			opts := coord.ConsulOptionsOf(c)
			c.Close()
			return openController(t, opts)
		},
	}}
}

func forAll(t *testing.T, fn func(t *testing.T, im implementation)) {
	for _, im := range implementations(t) {
		t.Run(im.name, func(t *testing.T) { fn(t, im) })
	}
}

// testPrefix is a Consul prefix of the test's own, so one agent serves many
// tests.
func testPrefix(t *testing.T) string {
	var r [4]byte
	rand.Read(r[:])
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return "strata-test/" + name + "-" + hex.EncodeToString(r[:]) + "/"
}

// openConsul opens a Consul coordinator closed at cleanup, logging to the
// test unless opts.Logger is set.
func openConsul(t *testing.T, opts coord.ConsulOptions) *coord.Consul {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := coord.OpenConsul(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openController opens a Consul coordinator and makes it the controller.
func openController(t *testing.T, opts coord.ConsulOptions) *coord.Consul {
	t.Helper()
	c := openConsul(t, opts)
	campaign(t, c)
	return c
}

func campaign(t *testing.T, c coord.Coordinator) coord.Term {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	term, err := c.Campaign(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return term
}

func TestTopicLifecycle(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		events := make(chan coord.Event, 100)
		cancel := c.Watch(func(e coord.Event) { events <- e })
		defer cancel()
		// The current state comes first: brokers, then the controller.
		if e := nextEvent(t, events); e.Kind != coord.BrokersChanged {
			t.Fatalf("first event %v, want BrokersChanged", e.Kind)
		}
		if e := nextEvent(t, events); e.Kind != coord.ControllerChanged || e.Controller != 1 || e.ControllerEpoch <= 0 {
			t.Fatalf("second event %+v, want ControllerChanged naming node 1", e)
		}

		m := coord.TopicMeta{Name: "orders", Configs: map[string]string{"retention.ms": "1000"},
			Partitions: []coord.PartitionMeta{{Partition: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}}
		created, err := c.CreateTopic(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if created.ID == ([16]byte{}) || created.Version == 0 {
			t.Fatalf("created topic lacks id or version: %+v", created)
		}
		if _, err := c.CreateTopic(ctx, m); !errors.Is(err, coord.ErrTopicExists) {
			t.Fatalf("second create: %v", err)
		}
		// A read right after the write sees it.
		if got, err := c.Topic(ctx, "orders"); err != nil || got.ID != created.ID {
			t.Fatalf("read after create: %+v %v", got, err)
		}

		// Check-and-set: a stale version is refused.
		upd := created.Clone()
		upd.Configs["retention.ms"] = "2000"
		stored, err := c.UpdateTopic(ctx, upd)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Version <= created.Version || stored.ID != created.ID {
			t.Fatalf("update did not advance the version or kept the id: %+v", stored)
		}
		if _, err := c.UpdateTopic(ctx, upd); !errors.Is(err, coord.ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if e := nextEvent(t, events); e.Kind != coord.TopicCreated || e.Topic.Name != "orders" {
			t.Fatalf("event after create: %+v", e)
		}
		if e := nextEvent(t, events); e.Kind != coord.TopicUpdated || e.Topic.Version != stored.Version {
			t.Fatalf("event after update: %+v", e)
		}
		cancel()

		// Survives a restart.
		c = im.reopen(t, c)
		got, err := c.Topic(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if got.Configs["retention.ms"] != "2000" || got.ID != created.ID {
			t.Fatalf("after restart: %+v", got)
		}
		if err := c.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Topic(ctx, "orders"); !errors.Is(err, coord.ErrUnknownTopic) {
			t.Fatalf("after delete: %v", err)
		}
		if err := c.DeleteTopic(ctx, "orders"); !errors.Is(err, coord.ErrUnknownTopic) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestPartitionIncrease(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		one := coord.PartitionMeta{Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}
		created, err := c.CreateTopic(ctx, coord.TopicMeta{Name: "grow", Partitions: []coord.PartitionMeta{one}})
		if err != nil {
			t.Fatal(err)
		}
		// Change partition 0 so the update below can show it is kept.
		p0 := created.Partitions[0]
		p0.ISR = []int32{}
		if _, err := c.UpdatePartition(ctx, "grow", p0, coord.AsController); err != nil {
			t.Fatal(err)
		}
		upd := created.Clone()
		for i := 1; i < 3; i++ {
			p := one.Clone()
			p.Partition = int32(i)
			upd.Partitions = append(upd.Partitions, p)
		}
		stored, err := c.UpdateTopic(ctx, upd)
		if err != nil {
			t.Fatal(err)
		}
		if len(stored.Partitions) != 3 || stored.Partitions[0].PartitionEpoch != 1 || len(stored.Partitions[0].ISR) != 0 {
			t.Fatalf("after the increase: %+v", stored.Partitions)
		}
		c = im.reopen(t, c)
		got, err := c.Topic(ctx, "grow")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Partitions) != 3 || got.Partitions[2].Partition != 2 || got.Partitions[2].Leader != 1 {
			t.Fatalf("after restart: %+v", got.Partitions)
		}
	})
}

func TestProducerIDsNeverRepeat(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		seen := map[int64]bool{}
		for round := 0; round < 3; round++ {
			first, err := c.AllocateProducerIDs(ctx, 10)
			if err != nil {
				t.Fatal(err)
			}
			for id := first; id < first+10; id++ {
				if seen[id] {
					t.Fatalf("producer id %d handed out twice", id)
				}
				seen[id] = true
			}
			c = im.reopen(t, c)
		}
		if _, err := c.AllocateProducerIDs(ctx, 0); err == nil {
			t.Fatal("allocating 0 ids should fail")
		}
	})
}

func TestClusterIDStable(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		c := im.open(t)
		id := c.ClusterID()
		if id == "" {
			t.Fatal("no cluster id once a controller exists")
		}
		c = im.reopen(t, c)
		if got := c.ClusterID(); got != id {
			t.Fatalf("cluster id %q after restart, was %q", got, id)
		}
	})
}

func TestWatchStartsWithCurrentState(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		for _, name := range []string{"b-topic", "a-topic"} {
			if _, err := c.CreateTopic(ctx, coord.TopicMeta{Name: name,
				Partitions: []coord.PartitionMeta{{Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.RegisterBroker(ctx, coord.BrokerInfo{NodeID: 1, Host: "127.0.0.1", Port: 9092}); err != nil {
			t.Fatal(err)
		}
		events := make(chan coord.Event, 100)
		defer c.Watch(func(e coord.Event) { events <- e })()
		if e := nextEvent(t, events); e.Kind != coord.BrokersChanged || len(e.Brokers) != 1 || e.Brokers[0].NodeID != 1 {
			t.Fatalf("first event %+v, want the registered broker", e)
		}
		if e := nextEvent(t, events); e.Kind != coord.ControllerChanged || e.Controller != 1 {
			t.Fatalf("second event %+v", e)
		}
		for _, want := range []string{"a-topic", "b-topic"} {
			if e := nextEvent(t, events); e.Kind != coord.TopicCreated || e.Topic.Name != want || len(e.Topic.Partitions) != 1 {
				t.Fatalf("event %+v, want TopicCreated %s", e, want)
			}
		}
	})
}

func TestCorruptMetadataIsAnError(t *testing.T) {
	c := implementations(t)[0].open(t).(*coord.Embedded)
	dir := coord.EmbeddedDir(c)
	c.Close()
	if err := os.WriteFile(coord.EmbeddedPath(c), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := coord.OpenEmbedded(dir, 1); err == nil {
		t.Fatal("opening corrupt metadata succeeded")
	}
}

func nextEvent(t *testing.T, ch <-chan coord.Event) coord.Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(30 * time.Second):
		t.Fatal("no coord event within 30s")
		return coord.Event{}
	}
}

func TestPartitionCheckAndSet(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		if _, err := c.Campaign(ctx); err != nil {
			t.Fatal(err)
		}
		self, err := c.RegisterBroker(ctx, coord.BrokerInfo{NodeID: 1, Host: "127.0.0.1", Port: 9092})
		if err != nil {
			t.Fatal(err)
		}
		if self.Epoch <= 0 {
			t.Fatalf("registration has no broker epoch: %+v", self)
		}
		m := coord.TopicMeta{Name: "p", Partitions: []coord.PartitionMeta{{Partition: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}}
		created, err := c.CreateTopic(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		p := created.Partitions[0]
		p.ISR = []int32{1}
		got, err := c.UpdatePartition(ctx, "p", p, coord.AsLeader)
		if err != nil {
			t.Fatal(err)
		}
		if got.PartitionEpoch != p.PartitionEpoch+1 || len(got.ISR) != 1 {
			t.Fatalf("after ISR shrink: %+v", got)
		}
		// The same write again is stale: partition epoch moved.
		if cur, err := c.UpdatePartition(ctx, "p", p, coord.AsLeader); !errors.Is(err, coord.ErrConflict) || cur.PartitionEpoch != got.PartitionEpoch {
			t.Fatalf("stale partition write: %+v %v", cur, err)
		}
		// A leader write at the wrong leader epoch is fenced.
		wrong := got.Clone()
		wrong.LeaderEpoch = 7
		if _, err := c.UpdatePartition(ctx, "p", wrong, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
			t.Fatalf("leader write at a wrong epoch: %v", err)
		}
		// The controller elects another leader; the old leader's view is stale.
		el := got.Clone()
		el.Leader, el.LeaderEpoch = 2, got.LeaderEpoch+1
		if _, err := c.UpdatePartition(ctx, "p", el, coord.AsController); err != nil {
			t.Fatal(err)
		}
		top, err := c.Topic(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if top.Partitions[0].Leader != 2 || top.Partitions[0].PartitionEpoch != got.PartitionEpoch+1 {
			t.Fatalf("after election: %+v", top.Partitions[0])
		}
		// Node 1 is no longer the leader: its ISR writes are fenced.
		stale := top.Partitions[0].Clone()
		if _, err := c.UpdatePartition(ctx, "p", stale, coord.AsLeader); !errors.Is(err, coord.ErrFenced) {
			t.Fatalf("write by a deposed leader: %v", err)
		}
		if _, err := c.UpdatePartition(ctx, "p", coord.PartitionMeta{Partition: 5}, coord.AsController); !errors.Is(err, coord.ErrUnknownTopic) {
			t.Fatalf("write to a partition out of range: %v", err)
		}
	})
}
