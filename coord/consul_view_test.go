package coord

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

const pfx = "p/"

func pair(key, value string, create, modify uint64) *api.KVPair {
	return &api.KVPair{Key: pfx + key, Value: []byte(value), CreateIndex: create, ModifyIndex: modify}
}

func topicValue(partitions int) string {
	return `{"id":"0123456789abcdef0123456789abcdef","partitions":` + string(rune('0'+partitions)) + `,"version":1}`
}

func partValue(p, leader int, isr string) string {
	return `{"partition":` + string(rune('0'+p)) + `,"leader":` + string(rune('0'+leader)) +
		`,"leader_epoch":0,"partition_epoch":0,"replicas":[1,2],"isr":` + isr + `}`
}

func pairsOf(ps ...*api.KVPair) map[string]*api.KVPair {
	m := map[string]*api.KVPair{}
	for _, p := range ps {
		m[p.Key] = p
	}
	return m
}

func TestBuildViewKeepsLastGoodValue(t *testing.T) {
	lastGood := map[string]decoded{}
	v1, probs := buildView(pfx, pairsOf(pair("topics/t", topicValue(1), 1, 1), pair("partitions/t/0", partValue(0, 1, "[1,2]"), 1, 1)), lastGood, emptyView())
	if len(probs) != 0 || len(v1.topics["t"].meta.Partitions[0].ISR) != 2 {
		t.Fatalf("view %+v, problems %+v", v1.topics, probs)
	}
	// The partition key turns to garbage: its last readable state stays.
	bad := pairsOf(pair("topics/t", topicValue(1), 1, 1), pair("partitions/t/0", `{"isr":[]}`, 1, 2))
	v2, probs := buildView(pfx, bad, lastGood, v1)
	if len(probs) != 1 || !strings.Contains(probs[0].msg, "keeping its last readable value") || probs[0].index != 2 {
		t.Fatalf("problems %+v", probs)
	}
	if got := v2.topics["t"].meta.Partitions[0]; len(got.ISR) != 2 || v2.topics["t"].partIndex[0] != 1 {
		t.Fatalf("partition after garbage: %+v (index %d)", got, v2.topics["t"].partIndex[0])
	}
	// A reader that never saw it readable skips the topic.
	v3, probs := buildView(pfx, bad, map[string]decoded{}, emptyView())
	if _, ok := v3.topics["t"]; ok || len(probs) != 2 {
		t.Fatalf("topics %+v, problems %+v", v3.topics, probs)
	}
}

func TestBuildViewStrayPartitions(t *testing.T) {
	v, probs := buildView(pfx, pairsOf(
		pair("topics/t", topicValue(1), 1, 1),
		pair("partitions/t/0", partValue(0, 1, "[1]"), 1, 1),
		pair("partitions/t/1", partValue(1, 1, "[1]"), 2, 2),     // an interrupted increase
		pair("partitions/ghost/0", partValue(0, 1, "[1]"), 3, 3), // an interrupted create
		pair("topics/short", topicValue(2), 4, 4),                // lacks partition 1
		pair("partitions/short/0", partValue(0, 1, "[1]"), 4, 4),
	), map[string]decoded{}, emptyView())
	if len(v.topics) != 1 || len(v.topics["t"].meta.Partitions) != 1 {
		t.Fatalf("topics %+v", v.topics)
	}
	if len(v.orphans) != 1 || v.orphans[0] != "ghost" || len(v.extra["t"]) != 1 || v.extra["t"][0] != 1 {
		t.Fatalf("orphans %v, extra %v", v.orphans, v.extra)
	}
	var msgs []string
	for _, p := range probs {
		msgs = append(msgs, p.key+": "+p.msg)
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "p/partitions/t/1: partition key beyond") || !strings.Contains(all, `"short" lacks partition keys [1]`) ||
		strings.Contains(all, "ghost") {
		t.Fatalf("problems:\n%s", all)
	}
}

func TestBuildViewNeedsSessions(t *testing.T) {
	held := pair("brokers/1", `{"node_id":1,"host":"h","port":1}`, 5, 7)
	held.Session = "s1"
	free := pair("brokers/2", `{"node_id":2,"host":"h","port":1}`, 5, 5)
	ctrl := pair("controller", `{"node_id":1}`, 3, 9)
	ctrl.Session = "s1"
	v, probs := buildView(pfx, pairsOf(held, free, ctrl), map[string]decoded{}, emptyView())
	if len(v.brokers) != 1 || v.brokers[1].info.Epoch != 5 || v.brokers[1].session != "s1" {
		t.Fatalf("brokers %+v", v.brokers)
	}
	if v.controller.node != 1 || v.controller.epoch != 9 || len(probs) != 1 {
		t.Fatalf("controller %+v, problems %+v", v.controller, probs)
	}
}

func TestDiffViews(t *testing.T) {
	base := func() view {
		v := emptyView()
		v.topics["a"] = topicState{meta: TopicMeta{Name: "a", ID: [16]byte{1}, Version: 1, Configs: map[string]string{},
			Partitions: []PartitionMeta{{Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}}}
		v.topics["b"] = topicState{meta: TopicMeta{Name: "b", ID: [16]byte{2}, Version: 1, Configs: map[string]string{}}}
		return v
	}
	old, cur := base(), base()
	if evs := diffViews(old, cur); len(evs) != 0 {
		t.Fatalf("equal views give %+v", evs)
	}
	a := cur.topics["a"]
	a.meta = a.meta.Clone()
	a.meta.Partitions[0].ISR = []int32{}
	cur.topics["a"] = a
	delete(cur.topics, "b")
	cur.topics["c"] = topicState{meta: TopicMeta{Name: "c", ID: [16]byte{3}, Version: 1}}
	cur.brokers[1] = brokerState{info: BrokerInfo{NodeID: 1, Epoch: 4}}
	cur.controller = controllerState{node: 1, epoch: 9}
	var kinds []string
	for _, e := range diffViews(old, cur) {
		kinds = append(kinds, map[EventKind]string{TopicCreated: "created:", TopicUpdated: "updated:", TopicDeleted: "deleted:",
			BrokersChanged: "brokers", ControllerChanged: "controller"}[e.Kind]+e.Topic.Name)
	}
	if got := strings.Join(kinds, " "); got != "brokers controller updated:a deleted:b created:c" {
		t.Fatalf("events %s", got)
	}
	// Same name, new id: deleted and created again.
	re := base()
	b := re.topics["b"]
	b.meta.ID = [16]byte{9}
	re.topics["b"] = b
	evs := diffViews(base(), re)
	if len(evs) != 2 || evs[0].Kind != TopicDeleted || evs[1].Kind != TopicCreated || evs[1].Topic.ID != b.meta.ID {
		t.Fatalf("recreated topic gives %+v", evs)
	}
}

// testConsul is a Consul coordinator without a client or goroutines, for
// driving the snapshot by hand.
func testConsul() (*Consul, <-chan Event) {
	c := &Consul{opts: ConsulOptions{Prefix: pfx, NodeID: 1}, keys: consulKeys{prefix: pfx},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), ready: make(chan struct{}), base: time.Now()}
	c.mu.snap = newSnapshot()
	ch := make(chan Event, 100)
	c.watch.add(func(e Event) { ch <- e }, nil)
	return c, ch
}

func kvs(ps ...*api.KVPair) api.KVPairs { return api.KVPairs(ps) }

// TestPatchesUntilTheWatchCatchesUp: our own write shows at once and stays
// while watch results that predate it arrive; a result from a request
// issued after it, or at its index, replaces it.
func TestPatchesUntilTheWatchCatchesUp(t *testing.T) {
	c, events := testConsul()
	topic, p0 := pair("topics/t", topicValue(1), 5, 5), pair("partitions/t/0", partValue(0, 1, "[1,2]"), 5, 5)
	c.mu.snap.watchSeq = 1
	c.applyWatch(1, 10, kvs(topic, p0))
	if e := <-events; e.Kind != TopicCreated {
		t.Fatalf("event %+v", e)
	}
	isr := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.mu.snap.view.topics["t"].meta.Partitions[0].ISR)
	}
	// Our write at index 12, while request 1 is still in flight.
	written := partValue(0, 1, "[1]")
	c.patch(map[string]patch{pfx + "partitions/t/0": setPatch(pfx+"partitions/t/0", []byte(written), &api.KVPair{CreateIndex: 5, ModifyIndex: 12})})
	if isr() != 1 {
		t.Fatal("own write not visible")
	}
	if e := <-events; e.Kind != TopicUpdated {
		t.Fatalf("event %+v", e)
	}
	// Request 1 answers with the state before our write: the patch stays.
	c.applyWatch(1, 11, kvs(topic, p0))
	if isr() != 1 {
		t.Fatal("an older watch result undid our write")
	}
	// Request 2 (issued after the write) has something newer still.
	c.mu.snap.watchSeq = 2
	c.applyWatch(2, 14, kvs(topic, pair("partitions/t/0", partValue(0, 2, "[2]"), 5, 14)))
	c.mu.Lock()
	leader, patches := c.mu.snap.view.topics["t"].meta.Partitions[0].Leader, len(c.mu.snap.patches)
	c.mu.Unlock()
	if leader != 2 || patches != 0 {
		t.Fatalf("leader %d, %d patches left", leader, patches)
	}
	if e := <-events; e.Kind != TopicUpdated || e.Topic.Partitions[0].Leader != 2 {
		t.Fatalf("event %+v", e)
	}

	// A delete hides the topic until the watch has it too.
	c.patch(map[string]patch{pfx + "topics/t": deletePatch(5)})
	if e := <-events; e.Kind != TopicDeleted {
		t.Fatalf("event %+v", e)
	}
	c.applyWatch(2, 15, kvs(topic, p0)) // in flight before the delete
	select {
	case e := <-events:
		t.Fatalf("older result brought back the topic: %+v", e)
	default:
	}
	// Re-created by someone after our delete (a newer CreateIndex): shown.
	c.applyWatch(2, 20, kvs(pair("topics/t", topicValue(1), 18, 18), pair("partitions/t/0", partValue(0, 1, "[1]"), 17, 17)))
	if e := <-events; e.Kind != TopicCreated {
		t.Fatalf("event %+v", e)
	}
}

// TestRolesEndWithTheView: the view showing the controller key or our
// registration held by another session ends the term and the registration.
func TestRolesEndWithTheView(t *testing.T) {
	c, _ := testConsul()
	ctrl := pair("controller", `{"node_id":1}`, 3, 3)
	ctrl.Session = "ours"
	reg := pair("brokers/1", `{"node_id":1,"host":"h","port":1}`, 4, 4)
	reg.Session = "ours"
	c.applyWatch(1, 4, kvs(ctrl, reg))
	term := &consulTerm{epoch: 3, session: "ours", done: make(chan struct{})}
	c.mu.Lock()
	c.mu.term, c.mu.regSession = term, "ours"
	c.mu.Unlock()
	c.applyWatch(2, 5, kvs(ctrl, reg))
	select {
	case <-term.done:
		t.Fatal("term ended while the key is ours")
	default:
	}
	theirs := pair("controller", `{"node_id":2}`, 6, 6)
	theirs.Session = "theirs"
	c.applyWatch(3, 6, kvs(theirs))
	select {
	case <-term.done:
	default:
		t.Fatal("term still open with the lock held by another session")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.term != nil || c.mu.regSession != "" || c.mu.snap.view.controller.node != 2 {
		t.Fatalf("term %v, registration session %q, controller %+v", c.mu.term, c.mu.regSession, c.mu.snap.view.controller)
	}
}
