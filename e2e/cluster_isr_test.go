package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/testenv"
)

// TestClusterFollowerPause is fault 4: a follower is stopped with SIGSTOP
// under a continuous acks=all producer. The ISR shrinks to the two others
// (min.insync.replicas is 2) and acks=all goes on; after SIGCONT the
// follower — whose session lapsed meanwhile, so it comes back with a new
// broker epoch — catches up and the leader takes it back into the ISR.
// Nothing acknowledged is lost and the three logs end up identical.
func TestClusterFollowerPause(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic = "follower-pause"
	c.CreateTopic(topic, 1, 3, nil)
	lp := startLoad(t, c, topic, 1, loadOptions{})
	lp.led.waitTotal(t, 200, 2*time.Minute, "before the pause")

	leader := c.WaitForLeader(topic, 0, -1)
	follower := leader%3 + 1
	paused := time.Now()
	c.Broker(follower).Pause()
	isr := c.WaitForISR(topic, 0, 2)
	if slices.Contains(isr, follower) || !slices.Contains(isr, leader) {
		t.Fatalf("follower %d stopped: ISR %v", follower, isr)
	}
	shrunk := time.Since(paused)
	before := lp.led.total()
	lp.led.waitTotal(t, before+300, time.Minute, "acks=all with the ISR at min.insync.replicas")
	if got := c.WaitForLeader(topic, 0, -1); got != leader {
		t.Errorf("leadership moved from %d to %d while a follower was stopped", leader, got)
	}
	t.Logf("follower %d stopped: ISR %v after %v; %d records acknowledged while it was out", follower, isr, shrunk.Round(time.Millisecond), lp.led.total()-before)

	resumed := time.Now()
	c.Broker(follower).Resume()
	c.WaitForBrokers(3)
	c.WaitForISR(topic, 0, 3)
	t.Logf("follower %d resumed: back in the ISR after %v", follower, time.Since(resumed).Round(time.Millisecond))
	lp.led.waitTotal(t, lp.led.total()+200, time.Minute, "writes with the ISR full again")
	lp.stop()
	lp.requireNoFailures()
	checkLedgers(t, c, topic, 1, lp.led)
	hw := highWatermark(t, c, topic, 0)
	for _, b := range c.Brokers {
		b.Kill()
	}
	compareReplicas(t, c, topic, 0, hw, []int32{1, 2, 3})
}

// TestClusterISRAlone is fault 5: both followers are killed, so the ISR is
// the leader alone, below min.insync.replicas=2. A raw acks=all Produce is
// refused with NOT_ENOUGH_REPLICAS before the append (its records must
// never show up), kcat (librdkafka) reports the same, acks=1 still works;
// the idempotent acks=all producer's records wait and are delivered once
// the followers are back. Nothing acknowledged is lost or stored twice.
func TestClusterISRAlone(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic = "isr-alone"
	c.CreateTopic(topic, 1, 3, nil)
	lp := startLoad(t, c, topic, 1, loadOptions{every: 10 * time.Millisecond})
	lp.led.waitTotal(t, 100, 2*time.Minute, "before the kills")

	leader := c.WaitForLeader(topic, 0, -1)
	var followers []int32
	for _, b := range c.Brokers {
		if b.NodeID != leader {
			followers = append(followers, b.NodeID)
			b.Kill()
		}
	}
	if isr := c.WaitForISR(topic, 0, 1); !slices.Equal(isr, []int32{leader}) {
		t.Fatalf("followers %v killed: ISR %v, want [%d]", followers, isr, leader)
	}
	ctx := testenv.Context(t, 5*time.Minute)
	all, one := newProducerProbe(t, c, -1), newProducerProbe(t, c, 1)
	refused := []string{"refused/0", "refused/1", "refused/2"}
	resp, err := rawProduce(ctx, all, leader, topic, 0, -1, 5*time.Second, refused)
	if err != nil {
		t.Fatal(err)
	}
	if got := kerr.ErrorForCode(resp.ErrorCode); got != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with the ISR at [%d]: %v, want NOT_ENOUGH_REPLICAS", leader, got)
	}
	t.Logf("acks=all to leader %d alone in the ISR: %v (%s)", leader, kerr.ErrorForCode(resp.ErrorCode), deref(resp.ErrorMessage))

	kcatOut, kcatErr := kcatProduce(t, c.Broker(leader).Addr, topic, "-1", "kcat-refused")
	if !strings.Contains(kcatOut, "Not enough in-sync replicas") {
		t.Errorf("kcat acks=all with the ISR at [%d]: %v\n%s", leader, kcatErr, kcatOut)
	}
	t.Logf("kcat acks=all: %s (%v)", short(kcatOut), kcatErr)

	oneLed := newLedger("acks1")
	for i := range 20 {
		values := []string{oneLed.value(0, int64(2*i), 40), oneLed.value(0, int64(2*i+1), 40)}
		resp, err := rawProduce(ctx, one, leader, topic, 0, 1, 5*time.Second, values)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("acks=1 with the ISR at [%d]: %v %v", leader, err, kerr.ErrorForCode(resp.ErrorCode))
		}
		for j, v := range values {
			oneLed.ack(0, ackRec{value: v, seq: int64(2*i + j), offset: resp.BaseOffset + int64(j), at: time.Now()})
		}
	}
	held := lp.led.total()
	for _, id := range followers {
		c.Broker(id).Restart()
	}
	c.WaitForBrokers(3)
	c.WaitForISR(topic, 0, 3)
	lp.led.waitTotal(t, held+200, 2*time.Minute, "acks=all after the followers are back")
	lp.stop()
	lp.requireNoFailures()
	read := checkLedgers(t, c, topic, 1, lp.led, oneLed)
	for _, r := range read[0] {
		if strings.HasPrefix(r.value, "refused/") || r.value == "kcat-refused" {
			t.Errorf("%q, refused with NOT_ENOUGH_REPLICAS, is at offset %d", r.value, r.offset)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// kcatProduce produces one line with kcat (librdkafka) with the given
// request.required.acks and no retries, returning its output.
func kcatProduce(t *testing.T, addr, topic, acks, value string) (string, error) {
	t.Helper()
	kcat := testenv.Kcat(t)
	cmd := exec.Command(kcat, "-P", "-b", addr, "-t", topic, "-p", "0",
		"-X", "request.required.acks="+acks, "-X", "message.send.max.retries=0", "-X", "message.timeout.ms=10000")
	cmd.Stdin = strings.NewReader(value + "\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestClusterWipedFollower is fault 8: a follower restarted with an empty
// data directory rejoins as a follower and is in no ISR until it has caught
// up (KIP-903). A backlog of about 24 MB (8 MB per partition) and small
// replica fetches (replica.fetch.max.bytes 8 KiB) make the catch-up last
// long enough to watch: the committed ISR (read from Consul) is sampled,
// then the wiped broker's size of the partition (DescribeLogDirs sent to
// it; a follower's log is the leader's bytes, so its size stands for its
// log end offset). The old incarnation may still be listed for the moment
// between the new one's registration and the controller's reaction (the
// registration is the broker's own write); from its removal on, the broker
// must not be listed again before its log is the leader's whole backlog,
// and the removal must come before that. The first wipe is the
// controller's (the election of a new controller and the rejoin happen
// together), the second a plain follower's. Every acknowledged record is
// still there at the end (the wiped brokers also led partitions: their
// leaderships must move, not be resumed on an empty log).
func TestClusterWipedFollower(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{}, "replica.fetch.max.bytes=8192", "replica.fetch.response.max.bytes=8192")
	const topic, parts = "wiped", 3
	c.CreateTopic(topic, parts, 3, nil)
	led := newLedger("backlog")
	produceBacklog(t, c, topic, parts, 8000, 1000, led)
	kv := consulKV{addr: c.Consul.Addr, prefix: defaultPrefix}
	pr := newProbe(t, c)
	ctx := testenv.Context(t, 10*time.Minute)

	ctrl := c.WaitForController(-1)
	var p, leader int32 = -1, -1
	// A partition the controller follows, so that wiping it wipes a
	// follower.
	for i := range int32(parts) {
		if l := c.WaitForLeader(topic, i, -1); l != ctrl {
			p, leader = i, l
			break
		}
	}
	if p < 0 {
		t.Fatalf("controller %d leads every partition", ctrl)
	}
	for step := range 2 {
		leader = c.WaitForLeader(topic, p, -1)
		ctrl = c.WaitForController(-1)
		wiped := ctrl // first the controller, then a broker that is neither
		if step == 1 || wiped == leader {
			wiped = int32(6) - ctrl - leader
			if ctrl == leader {
				wiped = leader%3 + 1
			}
		}
		if wiped == leader {
			t.Fatalf("step %d: broker %d to wipe leads %s-%d", step, wiped, topic, p)
		}
		full, err := logDirSize(ctx, pr, leader, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		c.Broker(wiped).WipeAndRestart()
		var samples, stale, behind, inISR int
		var staleFor time.Duration
		removed := false
		var violations []string
		start := time.Now()
		until(t, 5*time.Minute, fmt.Sprintf("wiped broker %d caught up and in the ISR of %s-%d", wiped, topic, p), func() (bool, string) {
			sp, _, err := kv.partition(ctx, topic, p)
			if err != nil {
				return false, err.Error()
			}
			size, err := logDirSize(ctx, pr, wiped, topic, p)
			if err != nil {
				return false, err.Error()
			}
			samples++
			in := slices.Contains(sp.ISR, wiped)
			switch {
			case in && size < full && !removed:
				// The registration is the broker's own write; the
				// controller's removal from the ISR follows it.
				stale++
				staleFor = time.Since(start)
			case in && size < full:
				violations = append(violations, fmt.Sprintf("%v: ISR %v with %d of %d bytes", time.Since(start).Round(time.Millisecond), sp.ISR, size, full))
			case in:
				inISR++
			default:
				removed = true
				if size < full {
					behind++
				}
			}
			return in && size >= full, fmt.Sprintf("ISR %v, %d of %d bytes", sp.ISR, size, full)
		})
		t.Logf("step %d: wiped broker %d (controller: %v) rejoined %s-%d's ISR after %v; %d samples: %d with the old incarnation still listed (up to %v after the restart returned), %d behind and out of the ISR, %d in it caught up",
			step, wiped, wiped == ctrl, topic, p, time.Since(start).Round(time.Millisecond), samples, stale, staleFor.Round(time.Millisecond), behind, inISR)
		for i, v := range violations {
			if i < 10 {
				t.Errorf("step %d: wiped broker %d back in the ISR before it caught up: %s", step, wiped, v)
			}
		}
		if !removed {
			t.Errorf("step %d: wiped broker %d never left the ISR", step, wiped)
		}
		if behind == 0 {
			t.Errorf("step %d: never saw broker %d behind and out of the ISR: the catch-up was not observed", step, wiped)
		}
		waitAllISR(c, topic, parts, 3)
	}
	checkLedgers(t, c, topic, parts, led)
}

// produceBacklog writes n records of pad bytes per partition with an
// idempotent acks=all producer in batches of at most 16 KiB, and waits for
// all of them.
func produceBacklog(t *testing.T, c *testenv.Cluster, topic string, parts int32, n, pad int, led *ledger) {
	t.Helper()
	cl := c.Client(t, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(16<<10), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordDeliveryTimeout(2*time.Minute))
	ctx := testenv.Context(t, 5*time.Minute)
	errs := make(chan error, 1)
	for seq := range int64(n) {
		for p := range parts {
			cl.Produce(ctx, &kgo.Record{Partition: p, Value: []byte(led.value(p, seq, pad))}, func(r *kgo.Record, err error) {
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
				led.ack(r.Partition, ackRec{value: string(r.Value), seq: seq, offset: r.Offset, at: time.Now()})
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		t.Fatalf("backlog: %v", err)
	default:
	}
	t.Logf("backlog: %d records of %d bytes in each of %d partitions", n, pad, parts)
}

// logDirSize is topic-partition's size on broker id (DescribeLogDirs sent
// to it).
func logDirSize(ctx context.Context, pr *probe, id int32, topic string, p int32) (int64, error) {
	req := kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{p}
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := pr.broker(id).Request(ctx, req)
	if err != nil {
		return 0, err
	}
	for _, d := range resp.(*kmsg.DescribeLogDirsResponse).Dirs {
		if d.Dir == "remote:" {
			continue
		}
		for _, dt := range d.Topics {
			for _, dp := range dt.Partitions {
				if dt.Topic == topic && dp.Partition == p {
					return dp.Size, nil
				}
			}
		}
	}
	return 0, fmt.Errorf("broker %d does not host %s-%d yet", id, topic, p)
}
