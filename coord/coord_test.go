package coord

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// implementations lists every Coordinator to run the shared suite against;
// the Consul implementation joins it in the cluster issue. reopen simulates a
// restart on the same durable state.
type implementation struct {
	name   string
	open   func(t *testing.T) Coordinator
	reopen func(t *testing.T, old Coordinator) Coordinator
}

func implementations(t *testing.T) []implementation {
	return []implementation{{
		name: "embedded",
		open: func(t *testing.T) Coordinator {
			dir := t.TempDir()
			c, err := OpenEmbedded(dir, 1)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		reopen: func(t *testing.T, old Coordinator) Coordinator {
			e := old.(*Embedded)
			e.Close()
			c, err := OpenEmbedded(dirOf(e), 1)
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
	}}
}

func dirOf(e *Embedded) string { return e.path[:len(e.path)-len(metaFileName)-1] }

func forAll(t *testing.T, fn func(t *testing.T, im implementation)) {
	for _, im := range implementations(t) {
		t.Run(im.name, func(t *testing.T) { fn(t, im) })
	}
}

func TestTopicLifecycle(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		events := make(chan Event, 100)
		cancel := c.Watch(func(e Event) { events <- e })
		defer cancel()
		// The current state comes first: brokers, then the controller.
		if e := nextEvent(t, events); e.Kind != BrokersChanged {
			t.Fatalf("first event %v, want BrokersChanged", e.Kind)
		}
		if e := nextEvent(t, events); e.Kind != ControllerChanged {
			t.Fatalf("second event %v, want ControllerChanged", e.Kind)
		}

		m := TopicMeta{Name: "orders", Configs: map[string]string{"retention.ms": "1000"},
			Partitions: []PartitionMeta{{Partition: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}}
		created, err := c.CreateTopic(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if created.ID == ([16]byte{}) || created.Version == 0 {
			t.Fatalf("created topic lacks id or version: %+v", created)
		}
		if _, err := c.CreateTopic(ctx, m); !errors.Is(err, ErrTopicExists) {
			t.Fatalf("second create: %v", err)
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
		if _, err := c.UpdateTopic(ctx, upd); !errors.Is(err, ErrConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if e := nextEvent(t, events); e.Kind != TopicCreated || e.Topic.Name != "orders" {
			t.Fatalf("event after create: %+v", e)
		}
		if e := nextEvent(t, events); e.Kind != TopicUpdated || e.Topic.Version != stored.Version {
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
		if _, err := c.Topic(ctx, "orders"); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("after delete: %v", err)
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

func TestCorruptMetadataIsAnError(t *testing.T) {
	c := implementations(t)[0].open(t).(*Embedded)
	dir := dirOf(c)
	c.Close()
	if err := writeFile(c.path, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEmbedded(dir, 1); err == nil {
		t.Fatal("opening corrupt metadata succeeded")
	}
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

func nextEvent(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no coord event within 10s")
		return Event{}
	}
}

func TestPartitionCheckAndSet(t *testing.T) {
	forAll(t, func(t *testing.T, im implementation) {
		ctx := context.Background()
		c := im.open(t)
		if _, err := c.Campaign(ctx); err != nil {
			t.Fatal(err)
		}
		self, err := c.RegisterBroker(ctx, BrokerInfo{NodeID: 1, Host: "127.0.0.1", Port: 9092})
		if err != nil {
			t.Fatal(err)
		}
		if self.Epoch <= 0 {
			t.Fatalf("registration has no broker epoch: %+v", self)
		}
		m := TopicMeta{Name: "p", Partitions: []PartitionMeta{{Partition: 0, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}}}
		created, err := c.CreateTopic(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		p := created.Partitions[0]
		p.ISR = []int32{1}
		got, err := c.UpdatePartition(ctx, "p", p, AsLeader)
		if err != nil {
			t.Fatal(err)
		}
		if got.PartitionEpoch != p.PartitionEpoch+1 || len(got.ISR) != 1 {
			t.Fatalf("after ISR shrink: %+v", got)
		}
		// The same write again is stale: partition epoch moved.
		if cur, err := c.UpdatePartition(ctx, "p", p, AsLeader); !errors.Is(err, ErrConflict) || cur.PartitionEpoch != got.PartitionEpoch {
			t.Fatalf("stale partition write: %+v %v", cur, err)
		}
		// A leader write at the wrong leader epoch is fenced.
		wrong := got.Clone()
		wrong.LeaderEpoch = 7
		if _, err := c.UpdatePartition(ctx, "p", wrong, AsLeader); !errors.Is(err, ErrFenced) {
			t.Fatalf("leader write at a wrong epoch: %v", err)
		}
		// The controller elects another leader; the old leader's view is stale.
		el := got.Clone()
		el.Leader, el.LeaderEpoch = 2, got.LeaderEpoch+1
		if _, err := c.UpdatePartition(ctx, "p", el, AsController); err != nil {
			t.Fatal(err)
		}
		top, err := c.Topic(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if top.Partitions[0].Leader != 2 || top.Partitions[0].PartitionEpoch != got.PartitionEpoch+1 {
			t.Fatalf("after election: %+v", top.Partitions[0])
		}
	})
}
