package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

var groupConfigs = []string{
	"group.initial.rebalance.delay.ms=0",
	"group.min.session.timeout.ms=300",
	"offsets.topic.num.partitions=4",
}

func produceN(t *testing.T, addr, topic string, from, n int) {
	t.Helper()
	cl := testenv.Client(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	ctx := testenv.Context(t, 60*time.Second)
	for i := from; i < from+n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGroupSurvivesBrokerKill9: a consumer group commits while the broker is
// SIGKILLed and restarted. The group's offsets come back from
// __consumer_offsets, the consumer carries on, no committed offset ever goes
// backwards, and every record is processed.
func TestGroupSurvivesBrokerKill9(t *testing.T) {
	srv := testenv.StartProcess(t, testenv.ProcessOptions{Configs: groupConfigs})
	topic, group := "kill9-group", "g-kill9"
	testenv.CreateTopic(t, srv.Addr, topic, 4, nil)
	const n = 4000
	produceN(t, srv.Addr, topic, 0, n)
	ctx := testenv.Context(t, 90*time.Second)

	var mu sync.Mutex
	processed := map[string]bool{}
	acked := map[int32]int64{} // highest commit the broker acknowledged
	cl := testenv.Client(t, srv.Addr,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
		kgo.FetchMaxPartitionBytes(300), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RetryTimeout(60*time.Second))
	go func() {
		// Offsets not yet acknowledged: a commit that fails (the broker
		// was killed mid-request) is retried with the next one, even when
		// no new records arrive for that partition.
		pending := map[int32]kgo.EpochOffset{}
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			recs := fs.Records()
			mu.Lock()
			for _, r := range recs {
				processed[string(r.Value)] = true
			}
			mu.Unlock()
			for _, r := range recs {
				pending[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
			}
			if len(pending) == 0 {
				continue
			}
			offs := map[string]map[int32]kgo.EpochOffset{topic: {}}
			for p, o := range pending {
				offs[topic][p] = o
			}
			cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				if err != nil {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, rt := range resp.Topics {
					for _, rp := range rt.Partitions {
						o := offs[topic][rp.Partition].Offset
						if rp.ErrorCode != 0 {
							continue
						}
						if o > acked[rp.Partition] {
							acked[rp.Partition] = o
						}
						if pending[rp.Partition].Offset == o {
							delete(pending, rp.Partition)
						}
					}
				}
			})
			time.Sleep(5 * time.Millisecond)
		}
	}()

	waitProcessed := func(want int) {
		for {
			mu.Lock()
			got := len(processed)
			mu.Unlock()
			if got >= want {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("processed %d of %d: %v", got, want, ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitProcessed(n / 3)
	srv.Kill()
	mu.Lock()
	before := map[int32]int64{}
	for p, o := range acked {
		before[p] = o
	}
	mu.Unlock()
	srv.Restart()

	// Right after the restart, committed offsets are at least what was
	// acknowledged before the kill.
	adm := kadm.NewClient(testenv.Client(t, srv.Addr))
	var got kadm.OffsetResponses
	for {
		var err error
		got, err = adm.FetchOffsets(ctx, group)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("fetch offsets after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for p, o := range before {
		if c, _ := got.Lookup(topic, p); c.At < o {
			t.Fatalf("partition %d: committed offset went back from %d to %d across kill -9", p, o, c.At)
		}
	}
	// And never go back while the consumer finishes.
	last := map[int32]int64{}
	got.Each(func(o kadm.OffsetResponse) { last[o.Partition] = o.At })
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			done := true
			offs.Each(func(o kadm.OffsetResponse) {
				if o.At < last[o.Partition] {
					t.Fatalf("partition %d: committed offset went back from %d to %d", o.Partition, last[o.Partition], o.At)
				}
				last[o.Partition] = o.At
			})
			total := int64(0)
			for _, o := range last {
				total += o
			}
			mu.Lock()
			all := len(processed) == n
			mu.Unlock()
			if done && all && total == n {
				return
			}
		}
		if ctx.Err() != nil {
			// Dump the broker's view of the group for diagnosis.
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			dg, derr := adm.DescribeGroups(dctx, group)
			cancel()
			mu.Lock()
			np := len(processed)
			mu.Unlock()
			t.Logf("describe groups: %+v (err %v); processed %d of %d", dg, derr, np, n)
			t.Fatalf("consumer never finished: commits %v: %v", last, ctx.Err())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGroupKcatWithFranz: a librdkafka balanced consumer (kcat -G) and a
// franz-go consumer share one group: they split the partitions, and between
// them read every record once the group is stable.
func TestGroupKcatWithFranz(t *testing.T) {
	kcat := testenv.Kcat(t)
	srv := testenv.StartProcess(t, testenv.ProcessOptions{Configs: groupConfigs})
	topic, group := "kcat-group", "g-kcat"
	testenv.CreateTopic(t, srv.Addr, topic, 4, nil)
	ctx := testenv.Context(t, 60*time.Second)

	var mu sync.Mutex
	seen := map[string]int{}
	kctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(kctx, kcat, "-b", srv.Addr, "-G", group, "-q", "-u", "-f", "%s\n",
		"-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=200",
		"-X", "partition.assignment.strategy=range", topic)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kcatDone := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			mu.Lock()
			seen["kcat:"+sc.Text()]++
			mu.Unlock()
		}
		close(kcatDone)
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		<-kcatDone
		if t.Failed() {
			t.Logf("kcat stderr:\n%s", stderr.String())
		}
	})

	cl := testenv.Client(t, srv.Addr, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.Balancers(kgo.RangeBalancer()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(200*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond))
	go func() {
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				seen["franz:"+string(r.Value)]++
				mu.Unlock()
			})
		}
	}()

	// Both members hold two partitions each.
	adm := kadm.NewClient(testenv.Client(t, srv.Addr))
	for {
		dg, err := adm.DescribeGroups(ctx, group)
		if err == nil && dg[group].State == "Stable" && len(dg[group].Members) == 2 {
			ok := true
			for _, m := range dg[group].Members {
				ca, _ := m.Assigned.AsConsumer()
				if len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != 2 {
					ok = false
				}
			}
			if ok {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("kcat and franz-go never shared the group: %v %+v", err, dg)
		}
		time.Sleep(100 * time.Millisecond)
	}

	const n = 400
	produceN(t, srv.Addr, topic, 0, n)
	for {
		mu.Lock()
		kc, fr := 0, 0
		missing := 0
		for i := 0; i < n; i++ {
			k, f := seen[fmt.Sprint("kcat:", i)], seen[fmt.Sprint("franz:", i)]
			kc += k
			fr += f
			if k+f == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			if kc == 0 || fr == 0 {
				t.Fatalf("one consumer read nothing: kcat %d, franz-go %d", kc, fr)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%d records never consumed (kcat read %d, franz-go %d)", missing, kc, fr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
