package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-broker/strata/testenv"
)

// replicaFetch sends a replica Fetch v15 (ReplicaState, KIP-903) for one
// partition straight to broker id, as broker replica at broker epoch epoch
// would, and returns the partition's answer.
func replicaFetch(ctx context.Context, pr *probe, id int32, topicID [16]byte, topic string, partition, replica int32, epoch int64, leaderEpoch int32, offset int64) (kmsg.FetchResponseTopicPartition, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.ReplicaState.ID, req.ReplicaState.Epoch = replica, epoch
	req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 100, 1, 1<<20
	req.SessionID, req.SessionEpoch = 0, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, topicID
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.FetchOffset, rp.LastFetchedEpoch = partition, leaderEpoch, offset, -1
	rp.LogStartOffset, rp.PartitionMaxBytes = -1, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kresp, err := pr.broker(id).Request(ctx, req)
	if err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kmsg.FetchResponseTopicPartition{}, err
	}
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			if sp.Partition == partition {
				return sp, nil
			}
		}
	}
	return kmsg.FetchResponseTopicPartition{}, fmt.Errorf("fetch response without %s-%d", topic, partition)
}

// fetchV15 is a probe whose Fetch requests are version 15 exactly.
func fetchV15(t *testing.T, c *testenv.Cluster) *probe {
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.Fetch.Int16(), 15)
	return newProbe(t, c, kgo.MaxVersions(v))
}

// TestClusterBadReplicaFetch sends replica fetches no follower should send
// — from a broker id that is no replica, from a live follower with a stale
// broker epoch, from a killed follower with the epoch it had — straight to
// a partition's leader, each at the leader's log end (what would admit a
// replica to the ISR). Each is refused with an error code and a log line or,
// for the dead broker's epoch, served but never taken for the ISR; the
// leader keeps running, the committed ISR never gains a member that did not
// catch up as a live broker, and acks=all keeps working.
func TestClusterBadReplicaFetch(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic = "badfetch"
	c.CreateTopic(topic, 1, 3, nil)
	led := newLedger("bf")
	produceBacklog(t, c, topic, 1, 100, 100, led)
	ctx := testenv.Context(t, 5*time.Minute)
	kv := consulKV{addr: c.Consul.Addr, prefix: defaultPrefix}
	pr := fetchV15(t, c)

	leader := c.WaitForLeader(topic, 0, -1)
	isr := c.WaitForISR(topic, 0, 3)
	md, err := pr.metadata(ctx, leader, topic)
	if err != nil {
		t.Fatal(err)
	}
	topicID, epoch := md.Topics[0].TopicID, md.Topics[0].Partitions[0].LeaderEpoch
	end := highWatermark(t, c, topic, 0)
	follower := isr[0]
	if follower == leader {
		follower = isr[1]
	}
	fEpoch, err := kv.brokerEpoch(ctx, follower)
	if err != nil {
		t.Fatal(err)
	}
	committedISR := func() []int32 {
		t.Helper()
		sp, _, err := kv.partition(ctx, topic, 0)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Sorted(slices.Values(sp.ISR))
	}

	for _, tc := range []struct {
		name    string
		replica int32
		epoch   int64
		offset  int64
		want    error
	}{
		{"unknown broker id at the log end", 99, 1, end, kerr.UnknownLeaderEpoch},
		{"unknown broker id, no epoch", 99, -1, 0, kerr.UnknownLeaderEpoch},
		{"the leader's own id", leader, 1, end, kerr.UnknownLeaderEpoch},
		{"live follower, stale broker epoch", follower, fEpoch - 1, 0, kerr.NotLeaderForPartition},
		{"live follower, stale broker epoch at the log end", follower, fEpoch - 1, end, kerr.NotLeaderForPartition},
	} {
		sp, err := replicaFetch(ctx, pr, leader, topicID, topic, 0, tc.replica, tc.epoch, epoch, tc.offset)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := kerr.ErrorForCode(sp.ErrorCode)
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if len(sp.RecordBatches) > 0 {
			t.Errorf("%s: refused fetch carried %d bytes of records", tc.name, len(sp.RecordBatches))
		}
		t.Logf("%s: %v", tc.name, got)
	}
	if got := committedISR(); !slices.Equal(got, isr) {
		t.Errorf("ISR %v after the refused fetches, was %v", got, isr)
	}
	if !c.Broker(leader).Running() || !strings.Contains(c.Broker(leader).Log(), "refused a replica fetch") {
		t.Errorf("leader %d: running %v; no \"refused a replica fetch\" line in its log", leader, c.Broker(leader).Running())
	}

	// A killed follower's old epoch: it is not registered, so the fetch is
	// served (Kafka serves it too) but never eligible for the ISR.
	c.Broker(follower).Kill()
	if got := c.WaitForISR(topic, 0, 2); slices.Contains(got, follower) {
		t.Fatalf("killed follower %d still in ISR %v", follower, got)
	}
	sent := time.Now()
	for range 5 {
		sp, err := replicaFetch(ctx, pr, leader, topicID, topic, 0, follower, fEpoch, epoch, end)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("dead follower %d's broker epoch %d at the log end: %v, %d bytes", follower, fEpoch, kerr.ErrorForCode(sp.ErrorCode), len(sp.RecordBatches))
	}
	if got := committedISR(); slices.Contains(got, follower) {
		t.Errorf("the dead follower's fetch put it back in the ISR %v", got)
	}
	c.Broker(follower).Restart()
	c.WaitForISR(topic, 0, 3)
	// The leader's first expansion after the forged fetches must come after
	// the follower's real registration.
	reg := logTime(t, logSince(c.Broker(follower).Log(), "---- restart ----"), "coord: broker registered")
	for _, line := range strings.Split(c.Broker(leader).Log(), "\n") {
		if !strings.Contains(line, "ISR changed") || !strings.Contains(line, "kind=expand") {
			continue
		}
		at := lineTime(line)
		if at.After(sent) && at.Before(reg) {
			t.Errorf("the leader expanded the ISR before follower %d re-registered (%v): %s", follower, reg.Format(time.StampMilli), line)
		}
	}
	led2 := newLedger("bf2")
	produceBacklog(t, c, topic, 1, 50, 100, led2)
	checkLedgers(t, c, topic, 1, led, led2)
}

// logTime is the time of the first line of log containing marker.
func logTime(t *testing.T, log, marker string) time.Time {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, marker) {
			if at := lineTime(line); !at.IsZero() {
				return at
			}
		}
	}
	t.Fatalf("no %q line with a time in the log", marker)
	return time.Time{}
}

// lineTime parses a slog text line's time= field (zero if none).
func lineTime(line string) time.Time {
	i := strings.Index(line, "time=")
	if i < 0 {
		return time.Time{}
	}
	f := strings.Fields(line[i+len("time="):])
	if len(f) == 0 {
		return time.Time{}
	}
	at, err := time.Parse(time.RFC3339Nano, f[0])
	if err != nil {
		return time.Time{}
	}
	return at
}
