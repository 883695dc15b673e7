package coord_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/testenv"
)

// Tests of the Consul coordinator against what goes wrong: garbage in the
// keyspace, Consul stopped and started again, bad options.

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
