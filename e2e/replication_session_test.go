package e2e

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// metricsOf scrapes a broker process's strata_* samples (name{labels} →
// value) from the --metrics-listen address it printed last (a restart
// prints a new one).
func metricsOf(t *testing.T, p *testenv.ClusterBroker) map[string]float64 {
	t.Helper()
	all := regexp.MustCompile(`metrics on (http://\S+/metrics)`).FindAllStringSubmatch(p.Log(), -1)
	if len(all) == 0 {
		t.Fatalf("broker %d printed no metrics address", p.NodeID)
	}
	resp, err := http.Get(all[len(all)-1][1])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	out := map[string]float64{}
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, "strata_") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// Followers replicate through incremental fetch sessions (KIP-227): on a
// three-broker cluster every replica fetch after a follower's first is
// incremental, a follower killed with kill -9 and restarted opens a new
// session, catches up and is back in every ISR, with the same log end as the
// leader, and no acknowledged record is lost or repeated.
func TestFollowersReplicateThroughFetchSessions(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{Brokers: 3, Args: []string{"--metrics-listen", "127.0.0.1:0"}, Configs: []string{
		"broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500", "replica.lag.time.max.ms=3000",
		"default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3",
	}})
	const topic, partitions = "replicated-sessions", 6
	c.CreateTopic(topic, partitions, 3, nil)
	ctx := testenv.Context(t, 5*time.Minute)
	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(2*time.Minute))
	sent := map[string]bool{}
	produce := func(n int) {
		t.Helper()
		var recs []*kgo.Record
		for range n {
			v := fmt.Sprintf("record-%d", len(sent))
			sent[v] = true
			recs = append(recs, &kgo.Record{Key: []byte(v), Value: []byte(v)})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	waitFullISR := func() {
		t.Helper()
		for p := range int32(partitions) {
			c.WaitForISR(topic, p, 3)
		}
	}
	produce(2000)
	waitFullISR()

	// Only followers fetch so far: incremental fetches are theirs.
	fetchesBy := func(kind string) float64 {
		total := 0.0
		for _, b := range c.Brokers {
			if b.Running() {
				total += metricsOf(t, b)[`strata_fetch_session_requests_total{kind="`+kind+`"}`]
			}
		}
		return total
	}
	if inc, sessions := fetchesBy("incremental"), metricsOf(t, c.Brokers[0])["strata_fetch_sessions"]; inc == 0 || sessions == 0 {
		t.Fatalf("followers: %v incremental fetches, broker 1 holds %v sessions", inc, sessions)
	}

	// kill -9 a follower of partition 0, write on, restart it.
	leader := c.WaitForLeader(topic, 0, -1)
	victim := c.Broker(leader%3 + 1)
	victim.Kill()
	c.WaitForISR(topic, 0, 2)
	produce(2000)
	fullBefore := fetchesBy("full")
	victim.Restart()
	c.WaitForBrokers(3)
	waitFullISR()
	// The restarted follower opened new sessions with full fetches (its
	// own counters start from zero, so the survivors' sum only grows).
	if fetchesBy("full")-metricsOf(t, victim)[`strata_fetch_session_requests_total{kind="full"}`] <= fullBefore {
		t.Fatalf("no new session opened for the restarted follower (full fetches %v before)", fullBefore)
	}
	if got := metricsOf(t, victim)["strata_replication_bytes_in_total"]; got == 0 {
		t.Fatalf("restarted broker %d replicated nothing", victim.NodeID)
	}

	// In the ISR means caught up to the high watermark, and every write was
	// acknowledged by acks=all, so the restarted follower's log ends where
	// each leader's does.
	vm := metricsOf(t, victim)
	for p := range int32(partitions) {
		l := c.Broker(c.WaitForLeader(topic, p, -1))
		key := fmt.Sprintf(`strata_partition_log_end_offset{partition="%d",topic="%s"}`, p, topic)
		if lm := metricsOf(t, l); vm[key] != lm[key] || lm[key] == 0 {
			t.Fatalf("partition %d: follower %d ends at %v, leader %d at %v", p, victim.NodeID, vm[key], l.NodeID, lm[key])
		}
	}

	recs := testenv.ReadAll(t, c.Addrs()[0], topic)
	seen := map[string]bool{}
	for _, r := range recs {
		v := string(r.Value)
		if !sent[v] || seen[v] {
			t.Fatalf("record %q read unexpectedly (unknown or twice)", v)
		}
		seen[v] = true
	}
	if len(seen) != len(sent) {
		t.Fatalf("read %d of %d acknowledged records", len(seen), len(sent))
	}
}
