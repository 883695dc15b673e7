package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// TestCrashLosesNoAcknowledgedRecord kills a real broker with SIGKILL several
// times under a continuous acks=all idempotent producer. After the last
// restart every acknowledged record must be in the log exactly once, in the
// order it was produced, per partition: recovery keeps what was acknowledged
// and the recovered producer state turns the client's retries into
// duplicates-acknowledged rather than duplicates-stored.
func TestCrashLosesNoAcknowledgedRecord(t *testing.T) {
	srv := testenv.StartProcess(t, testenv.ProcessOptions{Configs: []string{"log.segment.bytes=262144"}})
	const topic, partitions = "crashy", 3
	createTopic(t, srv.Addr, topic, partitions, nil)

	cl := newClient(t, srv.Addr,
		kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordDeliveryTimeout(2*time.Minute),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)

	var mu sync.Mutex
	acked := make([][]int, partitions) // sequence numbers acknowledged, per partition
	var failures []error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		next := make([]int, partitions)
		for i := 0; ctx.Err() == nil; i++ {
			p := i % partitions
			seq := next[p]
			next[p]++
			r := &kgo.Record{Partition: int32(p), Value: []byte(fmt.Sprintf("%d-%08d-%s", p, seq, strings.Repeat("v", 100)))}
			cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err)
					return
				}
				acked[p] = append(acked[p], seq)
			})
		}
	}()
	ackCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range acked {
			n += len(a)
		}
		return n
	}
	waitAcks := func(atLeast int) {
		deadline := time.Now().Add(90 * time.Second)
		for ackCount() < atLeast {
			if time.Now().After(deadline) {
				t.Fatalf("only %d acks after 90s, wanted %d; failures: %v", ackCount(), atLeast, failures)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	const kills = 4
	for k := 0; k < kills; k++ {
		waitAcks(ackCount() + 3000)
		srv.Kill()
		srv.Restart()
	}
	waitAcks(ackCount() + 3000)
	cancel()
	wg.Wait()
	if err := cl.Flush(testenv.Context(t, 2*time.Minute)); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mu.Lock()
	if len(failures) > 0 {
		t.Fatalf("%d produce failures, first: %v", len(failures), failures[0])
	}
	mu.Unlock()

	recs := readAll(t, srv.Addr, topic)
	stored := make([][]int, partitions)
	for _, r := range recs {
		f := strings.SplitN(string(r.Value), "-", 3)
		seq, err := strconv.Atoi(f[1])
		if err != nil || f[0] != strconv.Itoa(int(r.Partition)) {
			t.Fatalf("unexpected record %q in partition %d", r.Value, r.Partition)
		}
		stored[r.Partition] = append(stored[r.Partition], seq)
	}
	total := 0
	for p := 0; p < partitions; p++ {
		got := stored[p]
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("partition %d: sequence %d stored after %d (duplicate or reorder)", p, got[i], got[i-1])
			}
		}
		have := make(map[int]bool, len(got))
		for _, s := range got {
			have[s] = true
		}
		for _, s := range acked[p] {
			if !have[s] {
				t.Fatalf("partition %d: acknowledged record %d is missing after %d kills", p, s, kills)
			}
		}
		total += len(acked[p])
	}
	t.Logf("%d kills, %d acknowledged records, %d stored, all present once and in order", kills, total, len(recs))
}
