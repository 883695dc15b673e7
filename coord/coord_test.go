package coord

import (
	"context"
	"errors"
	"os"
	"testing"
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
		var events []Event
		cancel := c.Watch(func(e Event) { events = append(events, e) })
		defer cancel()

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
		upd.Partitions[0].LeaderEpoch = 1
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

		// Survives a restart.
		c = im.reopen(t, c)
		got, err := c.Topic(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		if got.Partitions[0].LeaderEpoch != 1 || got.Configs["retention.ms"] != "1000" || got.ID != created.ID {
			t.Fatalf("after restart: %+v", got)
		}
		if err := c.DeleteTopic(ctx, "orders"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Topic(ctx, "orders"); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("after delete: %v", err)
		}
		if len(events) < 2 || events[0].Kind != TopicCreated || events[1].Kind != TopicUpdated {
			t.Fatalf("events: %+v", events)
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
