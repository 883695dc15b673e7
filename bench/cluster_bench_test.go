package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

var failoverCycles = flag.Int("bench.failover-cycles", 10, "kill -9 cycles per failover benchmark")

// failoverConfigs are the cluster's settings for the failover benchmarks:
// Strata's defaults for detection (broker.session.timeout.ms 2500,
// heartbeats every 500 ms), RF 3 with min.insync.replicas 2.
var failoverConfigs = []string{"default.replication.factor=3", "min.insync.replicas=2", "offsets.topic.replication.factor=3"}

// BenchmarkClusterLeaderFailover measures issue 8's leader failover time:
// from kill -9 of a partition's leader to the next acknowledged acks=all
// write on that partition, under a producer that keeps writing (one record
// at a time, so each ack is timed). Each cycle restarts the killed broker
// and waits for the ISR to be full again. Reports p50/p99/max in ms.
//
//	go test ./bench/ -run '^$' -bench ClusterLeaderFailover -benchtime=1x -bench.failover-cycles=20
func BenchmarkClusterLeaderFailover(b *testing.B) {
	c := testenv.StartCluster(b, testenv.ClusterOptions{Brokers: 3, Configs: failoverConfigs})
	const topic = "failover"
	c.CreateTopic(topic, 1, 3, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A client tuned to notice a new leader quickly: kgo's default waits
	// at least 5 s between metadata refreshes (MetadataMinAge), which
	// would measure kgo rather than the cluster. Java's producer refreshes
	// after retry.backoff.ms (100 ms).
	cl := c.Client(b, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(2*time.Minute), kgo.RetryBackoffFn(func(int) time.Duration { return 20 * time.Millisecond }),
		kgo.MetadataMinAge(100*time.Millisecond))

	// sent[i] and acked[i] are when record i was sent and acknowledged.
	var mu sync.Mutex
	var sent, acked []time.Time
	var prodErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			at := time.Now()
			err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr()
			mu.Lock()
			if err != nil && ctx.Err() == nil {
				prodErr = err
			}
			if err == nil {
				sent, acked = append(sent, at), append(acked, time.Now())
			}
			mu.Unlock()
		}
	}()
	// ackAfter is when the first record sent at or after t0 was
	// acknowledged: a request in flight at the kill does not count.
	ackAfter := func(t0 time.Time) time.Time {
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			mu.Lock()
			i, _ := slices.BinarySearchFunc(sent, t0, func(a, t time.Time) int { return a.Compare(t) })
			var at time.Time
			if i < len(sent) {
				at = acked[i]
			}
			err := prodErr
			mu.Unlock()
			if err != nil {
				b.Fatalf("producer: %v", err)
			}
			if !at.IsZero() {
				return at
			}
			time.Sleep(5 * time.Millisecond) // polling the producer's own record of acks
		}
		b.Fatal("no acknowledged write within 2 minutes of the kill")
		return time.Time{}
	}
	var took []time.Duration
	b.ResetTimer()
	for cycle := 0; cycle < *failoverCycles; cycle++ {
		leader := c.WaitForLeader(topic, 0, -1)
		ackAfter(time.Now()) // the producer is writing before the kill
		t0 := time.Now()
		c.Broker(leader).Kill()
		took = append(took, ackAfter(t0).Sub(t0))
		c.Broker(leader).Restart()
		c.WaitForISR(topic, 0, 3)
	}
	b.StopTimer()
	cancel()
	<-done
	reportDurations(b, "failover", took)
}

// BenchmarkClusterControllerFailover measures controller failover: from
// kill -9 of the controller to a topic creation that succeeds through
// another broker (which needs a new controller holding the lock).
//
//	go test ./bench/ -run '^$' -bench ClusterControllerFailover -benchtime=1x -bench.failover-cycles=10
func BenchmarkClusterControllerFailover(b *testing.B) {
	c := testenv.StartCluster(b, testenv.ClusterOptions{Brokers: 3, Configs: failoverConfigs})
	var took []time.Duration
	b.ResetTimer()
	for cycle := 0; cycle < *failoverCycles; cycle++ {
		ctrl := c.WaitForController(-1)
		var other *testenv.ClusterBroker
		for _, br := range c.Brokers {
			if br.NodeID != ctrl {
				other = br
				break
			}
		}
		cl := c.Client(b, kgo.SeedBrokers(other.Addr))
		adm := kadm.NewClient(cl)
		t0 := time.Now()
		c.Broker(ctrl).Kill()
		name := fmt.Sprintf("after-controller-%d", cycle)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := adm.CreateTopic(ctx, 1, 2, nil, name) // RF 2: one broker is down
			cancel()
			if err == nil && resp.Err == nil {
				break
			}
			if time.Since(t0) > 2*time.Minute {
				b.Fatalf("no topic created within 2 minutes of killing controller %d: %v %v", ctrl, err, resp.Err)
			}
			time.Sleep(20 * time.Millisecond) // retrying the client's request, as an operator's tool would
		}
		took = append(took, time.Since(t0))
		cl.Close()
		c.Broker(ctrl).Restart()
		c.WaitForBrokers(3)
	}
	b.StopTimer()
	reportDurations(b, "controller-failover", took)
}

func reportDurations(b *testing.B, name string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	b.ReportMetric(float64(q(0.5).Milliseconds()), name+"-p50-ms")
	b.ReportMetric(float64(q(0.99).Milliseconds()), name+"-p99-ms")
	b.ReportMetric(float64(s[len(s)-1].Milliseconds()), name+"-max-ms")
	b.Logf("%s over %d cycles: %v", name, len(ds), ds)
}
