package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// TestClusterConsulGarbage writes garbage into the cluster's Consul
// keyspace with plain HTTP PUTs, as a stray script or a confused operator
// would, while an acks=all producer runs. Every broker must keep running,
// name every bad key in a log line, and keep serving the state it had:
//
//   - new keys that do not decode (a broker registration with bad JSON or
//     held by no session, topics with bad documents or without partition
//     keys, a partition beyond a topic's count, keys outside the layout)
//     are skipped: no ghost broker or topic shows up, no ISR changes;
//   - an existing partition's key overwritten with garbage keeps its last
//     readable state for readers, and freezes: the leader's ISR change for
//     it (a follower is stopped) is not written — no writer may build on a
//     state it cannot read — until an operator puts a valid document back,
//     after which the shrink and the re-expansion happen;
//   - garbage in the producer-id counter makes InitProducerId fail once a
//     broker needs a new block of ids, until it is restored, and no id is
//     handed out twice; producers that have ids carry on;
//   - a garbage cluster id leaves the brokers' cluster id as it was;
//   - garbage in the controller lock's value ends the controller's term (it
//     is fenced by the key's index); the role is taken again and topics can
//     be created.
//
// Nothing acknowledged is lost.
func TestClusterConsulGarbage(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic, frozen = "garbage", "frozen"
	c.CreateTopic(topic, 1, 3, nil)
	c.CreateTopic(frozen, 1, 3, nil)
	lp := startLoad(t, c, topic, 1, loadOptions{every: 10 * time.Millisecond})
	lp.led.waitTotal(t, 100, 2*time.Minute, "before the garbage")
	ctx := testenv.Context(t, 5*time.Minute)
	kv := consulKV{addr: c.Consul.Addr, prefix: defaultPrefix}
	adm := c.Admin(t)
	clusterID := func() string {
		t.Helper()
		md, err := adm.BrokerMetadata(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return md.Cluster
	}
	idBefore := clusterID()
	before, _, err := kv.partition(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}

	garbage := []struct{ key, value string }{
		{"brokers/7", `{"node_id": 7, "host": `},
		{"brokers/8", `{"node_id": 8, "host": "127.0.0.1", "port": 1}`}, // held by no session
		{"brokers/9", `{"node_id": 10, "host": "127.0.0.1", "port": 1}`},
		{"topics/ghost", `{"partitions": -5}`},
		{"topics/ghost2", `{"id": "0123456789abcdef0123456789abcdef", "partitions": 1, "version": 1}`}, // no partition keys
		{"topics/ghost3", "\x00\xff\xfe binary"},
		{"partitions/" + topic + "/7", `{"partition": 7, "leader": 1, "leader_epoch": 0, "partition_epoch": 0, "replicas": [1, 2, 3], "isr": [1, 2, 3]}`},
		{"partitions/" + topic + "/x", `{}`},
		{"topic-ids/zz", "ghost"},
		{"no-such-folder/key", "x"},
		{"cluster-id", "not a cluster id!"},
	}
	for _, g := range garbage {
		if err := kv.put(ctx, g.key, []byte(g.value)); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range garbage {
		until(t, time.Minute, "every broker logs "+g.key, func() (bool, string) {
			for _, b := range c.Brokers {
				if !strings.Contains(b.Log(), defaultPrefix+g.key) {
					return false, fmt.Sprintf("broker %d has no line naming %s", b.NodeID, g.key)
				}
			}
			return true, ""
		})
	}
	for _, b := range c.Brokers {
		if !b.Running() {
			t.Fatalf("broker %d died after garbage in Consul:\n%s", b.NodeID, b.LogTail(40))
		}
	}
	t.Logf("how broker 1 reported the garbage:\n%s", grepLines(c.Broker(1).Log(), "consul keyspace"))
	if ids := c.WaitForBrokers(3); !slices.Equal(ids, []int32{1, 2, 3}) {
		t.Errorf("brokers %v after garbage registrations", ids)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, ghost := range []string{"ghost", "ghost2", "ghost3"} {
		if topics.Has(ghost) {
			t.Errorf("garbage topic %s is listed", ghost)
		}
	}
	if td := topics[topic]; len(td.Partitions) != 1 {
		t.Errorf("%s has %d partitions after a garbage partition key beyond its count", topic, len(td.Partitions))
	}
	if got := c.WaitForISR(topic, 0, 3); !slices.Equal(got, slices.Sorted(slices.Values(before.ISR))) {
		t.Errorf("%s ISR %v, was %v", topic, got, before.ISR)
	}
	if got := clusterID(); got != idBefore {
		t.Errorf("cluster id %q after garbage under cluster-id, was %q", got, idBefore)
	}
	lp.led.waitTotal(t, lp.led.total()+100, time.Minute, "writes with garbage in the keyspace")

	// An existing partition key overwritten: readers keep its last state,
	// writers are refused until it is valid again.
	fkey := "partitions/" + frozen + "/0"
	good, ok, err := kv.get(ctx, fkey)
	if err != nil || !ok {
		t.Fatalf("read %s: %v %v", fkey, ok, err)
	}
	if err := kv.put(ctx, fkey, []byte(`{"partition": 0, "leader": `)); err != nil {
		t.Fatal(err)
	}
	fleader := c.WaitForLeader(frozen, 0, -1)
	if got := c.WaitForISR(frozen, 0, 3); len(got) != 3 {
		t.Fatalf("frozen ISR %v", got)
	}
	stopped := fleader%3 + 1
	c.Broker(stopped).Pause()
	// The stopped broker leaves the ISR through the controller (its session
	// lapses) or the leader (it lags); either write is refused.
	refusal := func(line string) bool {
		return strings.Contains(line, fkey) && (strings.Contains(line, "ISR change not written") || strings.Contains(line, "controller write failed"))
	}
	until(t, 2*time.Minute, "a refused write of the garbage partition key", func() (bool, string) {
		for _, b := range c.Brokers {
			if b.NodeID != stopped && slices.ContainsFunc(strings.Split(b.Log(), "\n"), refusal) {
				return true, ""
			}
		}
		return false, "no line yet"
	})
	if now, _, _ := kv.get(ctx, fkey); string(now.Value) != `{"partition": 0, "leader": ` {
		t.Errorf("%s was overwritten while garbage: %q", fkey, now.Value)
	}
	for _, b := range c.Brokers {
		if b.NodeID == stopped {
			continue
		}
		var lines []string
		for _, l := range strings.Split(b.Log(), "\n") {
			if refusal(l) {
				lines = append(lines, l)
			}
		}
		if len(lines) > 0 {
			t.Logf("frozen partition, follower %d stopped: broker %d logged %d refusals, the first:\n%s", stopped, b.NodeID, len(lines), lines[0])
		}
		if len(lines) > 100 {
			t.Errorf("broker %d logged %d refused writes of one partition: retrying in a loop", b.NodeID, len(lines))
		}
	}
	if err := kv.put(ctx, fkey, good.Value); err != nil {
		t.Fatal(err)
	}
	if got := c.WaitForISR(frozen, 0, 2); slices.Contains(got, stopped) {
		t.Errorf("restored key: ISR %v still holds the stopped broker %d", got, stopped)
	}
	c.Broker(stopped).Resume()
	c.WaitForBrokers(3)
	c.WaitForISR(frozen, 0, 3)

	// The producer-id counter: ids from blocks already reserved are still
	// handed out; a broker that needs a new block refuses InitProducerId
	// until the counter is readable again, and no id is given twice.
	pids, ok, err := kv.get(ctx, "producer-ids")
	if err != nil || !ok {
		t.Fatalf("read producer-ids: %v %v", ok, err)
	}
	if err := kv.put(ctx, "producer-ids", []byte("lots")); err != nil {
		t.Fatal(err)
	}
	pr := newProbe(t, c)
	given := map[int64]int32{}
	for _, b := range c.Brokers {
		refused := false
		for range 1001 {
			id, err := initProducerID(ctx, pr, b.NodeID)
			if err != nil {
				t.Logf("broker %d with garbage in producer-ids: InitProducerId %v after handing out ids of its block", b.NodeID, err)
				refused = true
				break
			}
			if other, dup := given[id]; dup {
				t.Fatalf("producer id %d given by broker %d and broker %d", id, other, b.NodeID)
			}
			given[id] = b.NodeID
		}
		if !refused {
			t.Errorf("broker %d handed out 1001 producer ids with garbage in producer-ids", b.NodeID)
		}
		until(t, time.Minute, fmt.Sprintf("broker %d's log line about the refused InitProducerId", b.NodeID), func() (bool, string) {
			return strings.Contains(b.Log(), "allocate producer id failed"), "none"
		})
	}
	lp.led.waitTotal(t, lp.led.total()+100, time.Minute, "the running producer keeps its id")
	if err := kv.put(ctx, "producer-ids", pids.Value); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.Brokers {
		id, err := initProducerID(ctx, pr, b.NodeID)
		if err != nil {
			t.Errorf("broker %d after producer-ids was restored: %v", b.NodeID, err)
			continue
		}
		if other, dup := given[id]; dup {
			t.Errorf("producer id %d given by broker %d again by broker %d", id, other, b.NodeID)
		}
	}

	// The controller lock's value (a plain PUT keeps the holder's session):
	// the controller's term is fenced by the key's index, so its next write
	// fails, it takes the lock again and carries on; topics can be created.
	ctrl := c.WaitForController(-1)
	if err := kv.put(ctx, "controller", []byte("{garbage")); err != nil {
		t.Fatal(err)
	}
	via := ctrl%3 + 1
	until(t, 2*time.Minute, "a topic created after garbage in the controller key", func() (bool, string) {
		err := createTopicVia(ctx, pr, via, "after-controller-garbage", 1, 3)
		return err == nil || errors.Is(err, kerr.TopicAlreadyExists), fmt.Sprint(err)
	})
	c.WaitForLeader("after-controller-garbage", 0, -1)
	t.Logf("garbage in the controller key (controller %d): %s", ctrl, grepLines(c.Broker(ctrl).Log(), "controller role", "controller elected", "this broker is the controller", "consul entry \"controller\""))

	for _, b := range c.Brokers {
		if !b.Running() {
			t.Errorf("broker %d is not running", b.NodeID)
		}
	}
	lp.stop()
	lp.requireNoFailures()
	checkLedgers(t, c, topic, 1, lp.led)
}

// initProducerID asks broker id for an idempotent producer id.
func initProducerID(ctx context.Context, pr *probe, id int32) (int64, error) {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60000
	req.ProducerID, req.ProducerEpoch = -1, -1
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := pr.broker(id).Request(ctx, req)
	if err != nil {
		return 0, err
	}
	r := resp.(*kmsg.InitProducerIDResponse)
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, err
	}
	return r.ProducerID, nil
}
