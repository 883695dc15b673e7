package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// groupConsumer is a kgo group member that commits what it processed after
// every poll (CommitOffsetsSync) and remembers, per partition, the highest
// offset a commit was acknowledged for.
type groupConsumer struct {
	cl    *kgo.Client
	topic string

	mu struct {
		sync.Mutex
		processed map[int32]map[int64]bool
		count     int
		acked     map[int32]int64
		commits   int
		failed    int
	}
	progress signal
}

func startGroupConsumer(t *testing.T, c *testenv.Cluster, topic, group string) *groupConsumer {
	gc := &groupConsumer{topic: topic}
	gc.mu.processed, gc.mu.acked = map[int32]map[int64]bool{}, map[int32]int64{}
	gc.cl = c.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(300*time.Millisecond),
		kgo.FetchMaxPartitionBytes(2000), kgo.FetchMaxBytes(4000), kgo.FetchMaxWait(100*time.Millisecond),
		kgo.RetryTimeout(2*time.Minute))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go gc.run(ctx, done)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return gc
}

func (gc *groupConsumer) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	// Offsets not yet acknowledged: a commit that failed (its coordinator
	// was killed mid-request) is sent again with the next one.
	pending := map[int32]kgo.EpochOffset{}
	for ctx.Err() == nil {
		fs := gc.cl.PollFetches(ctx)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return
		}
		recs := fs.Records()
		gc.mu.Lock()
		for _, r := range recs {
			if gc.mu.processed[r.Partition] == nil {
				gc.mu.processed[r.Partition] = map[int64]bool{}
			}
			if !gc.mu.processed[r.Partition][r.Offset] {
				gc.mu.processed[r.Partition][r.Offset] = true
				gc.mu.count++
			}
			pending[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
		}
		gc.mu.Unlock()
		gc.progress.fire()
		if len(pending) == 0 {
			continue
		}
		offs := map[string]map[int32]kgo.EpochOffset{gc.topic: {}}
		for p, o := range pending {
			offs[gc.topic][p] = o
		}
		gc.cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			gc.mu.Lock()
			defer gc.mu.Unlock()
			if err != nil {
				gc.mu.failed++
				return
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					o := offs[gc.topic][rp.Partition].Offset
					if rp.ErrorCode != 0 {
						gc.mu.failed++
						continue
					}
					gc.mu.commits++
					gc.mu.acked[rp.Partition] = max(gc.mu.acked[rp.Partition], o)
					if pending[rp.Partition].Offset == o {
						delete(pending, rp.Partition)
					}
				}
			}
		})
		gc.progress.fire()
	}
}

func (gc *groupConsumer) count() int {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.mu.count
}

func (gc *groupConsumer) acked() map[int32]int64 {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range gc.mu.acked {
		out[p] = o
	}
	return out
}

// waitCount waits until n distinct records were processed.
func (gc *groupConsumer) waitCount(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := gc.progress.wait()
		if got := gc.count(); got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("the group consumer processed %d of %d records within %v", gc.count(), n, timeout)
		}
	}
}

// TestClusterGroupCoordinatorKill is fault 9: a consumer group commits
// after every poll while the broker coordinating it — the leader of its
// __consumer_offsets partition (replication factor 3) — is killed with
// kill -9. The new leader of that partition loads the group; a watcher
// reading the committed offsets the whole time (kadm's OffsetFetch, sent to
// whichever broker coordinates the group then) never sees one go back, right after the failover every
// offset is at least the last commit acknowledged before the kill, and the
// consumer carries on: every record is processed (none skipped) and the
// final commits reach the end of every partition.
func TestClusterGroupCoordinatorKill(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic, group, parts, perPart = "grp", "g-coordinator-kill", 4, 1500
	c.CreateTopic(topic, parts, 3, nil)
	led := newLedger("grp")
	produceBacklog(t, c, topic, parts, perPart, 50, led)
	total := parts * perPart

	gc := startGroupConsumer(t, c, topic, group)
	gc.waitCount(t, total/4, 3*time.Minute)

	ctx := testenv.Context(t, 5*time.Minute)
	adm := c.Admin(t)
	var coordinator int32 = -1
	until(t, time.Minute, "the group's coordinator", func() (bool, string) {
		res := adm.FindGroupCoordinators(ctx, group)
		r, ok := res[group]
		if !ok || r.Err != nil {
			return false, fmt.Sprint(res)
		}
		coordinator = r.NodeID
		return true, ""
	})

	// The watcher: committed offsets, as the coordinator of the moment
	// answers them, never go back.
	var wmu sync.Mutex
	seen := map[int32]int64{}
	var wentBack []string
	reads := 0
	wctx, wcancel := context.WithCancel(ctx)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		r := &offsetReader{seeds: c.Addrs(), group: group}
		defer r.close()
		for wctx.Err() == nil {
			offs, err := r.read(wctx)
			if err == nil {
				wmu.Lock()
				reads++
				offs.Each(func(o kadm.OffsetResponse) {
					if o.Topic != topic {
						return
					}
					if o.At < seen[o.Partition] {
						wentBack = append(wentBack, fmt.Sprintf("partition %d: %d after %d", o.Partition, o.At, seen[o.Partition]))
					}
					seen[o.Partition] = max(seen[o.Partition], o.At)
				})
				wmu.Unlock()
			}
			select {
			case <-wctx.Done():
			case <-tick.C:
			}
		}
	}()

	before := gc.acked()
	processed := gc.count()
	c.Broker(coordinator).Kill()
	var next int32
	until(t, 2*time.Minute, "a new coordinator", func() (bool, string) {
		res := adm.FindGroupCoordinators(ctx, group)
		r := res[group]
		if r.Err != nil || r.NodeID == coordinator {
			return false, fmt.Sprintf("%d %v", r.NodeID, r.Err)
		}
		next = r.NodeID
		return true, ""
	})
	// Right after the failover, the new coordinator's offsets are at least
	// what was acknowledged before the kill.
	fresh := &offsetReader{seeds: c.Addrs(), group: group}
	defer fresh.close()
	until(t, 2*time.Minute, "committed offsets from the new coordinator", func() (bool, string) {
		offs, err := fresh.read(ctx)
		if err != nil {
			return false, err.Error()
		}
		for p, o := range before {
			if got, _ := offs.Lookup(topic, p); got.At < o {
				t.Errorf("partition %d: committed offset %d after the failover, %d was acknowledged before the kill", p, got.At, o)
			}
		}
		return true, ""
	})
	t.Logf("coordinator %d killed after %d of %d records; broker %d coordinates; acknowledged commits before the kill: %v",
		coordinator, processed, total, next, before)
	c.Broker(coordinator).Restart()
	c.WaitForBrokers(3)

	gc.waitCount(t, total, 3*time.Minute)
	until(t, 2*time.Minute, "commits at the end of every partition", func() (bool, string) {
		acked := gc.acked()
		for p := range int32(parts) {
			if acked[p] < perPart {
				return false, fmt.Sprint(acked)
			}
		}
		return true, ""
	})
	until(t, time.Minute, "the coordinator's committed offsets at the end of every partition", func() (bool, string) {
		offs, err := fresh.read(ctx)
		if err != nil {
			return false, err.Error()
		}
		for p := range int32(parts) {
			if o, _ := offs.Lookup(topic, p); o.At != perPart {
				return false, fmt.Sprintf("partition %d at %d", p, o.At)
			}
		}
		return true, ""
	})
	wcancel()
	<-wdone
	wmu.Lock()
	defer wmu.Unlock()
	for _, w := range wentBack {
		t.Errorf("a committed offset went back: %s", w)
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for p := range int32(parts) {
		for _, a := range led.acked(p) {
			if !gc.mu.processed[p][a.offset] {
				t.Errorf("partition %d: offset %d was never processed (skipped)", p, a.offset)
				break
			}
		}
	}
	t.Logf("processed all %d records; %d commits acknowledged, %d failed; %d committed-offset reads, final %v", total, gc.mu.commits, gc.mu.failed, reads, seen)
}

// offsetReader reads a group's committed offsets. kgo keeps a group's
// coordinator cached until the coordinator answers NOT_COORDINATOR (or the
// like), so a client that knew a killed one keeps dialing it: after an
// error the reader starts over with a new client.
type offsetReader struct {
	seeds []string
	group string
	cl    *kgo.Client
}

func (r *offsetReader) read(ctx context.Context) (kadm.OffsetResponses, error) {
	if r.cl == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(r.seeds...), kgo.DialTimeout(2*time.Second))
		if err != nil {
			return nil, err
		}
		r.cl = cl
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(r.cl).FetchOffsets(ctx, r.group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		r.close()
	}
	return offs, err
}

func (r *offsetReader) close() {
	if r.cl != nil {
		r.cl.Close()
		r.cl = nil
	}
}
