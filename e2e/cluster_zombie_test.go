package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// zombieProduce is one raw Produce sent straight to a stopped leader.
type zombieProduce struct {
	acks   int16
	values []string
	sent   string // "stopped" or "resumed"
	code   int16
	err    error
}

// TestClusterZombieLeader is fault 3: the leader of a partition is stopped
// with SIGSTOP for longer than its session (broker.session.timeout.ms, 3 s
// here). Meanwhile the controller elects another leader, which takes the
// idempotent producer's writes. Raw Produce requests — acks=all and acks=1,
// values no one else writes — are sent straight to the stopped leader, so
// they wait in its socket for the moment it runs again, and more are sent
// just after SIGCONT, when it may still think it leads. None may succeed:
// acks=all cannot reach a high watermark that needs followers now following
// someone else, and acks=0/1 are refused by a leader that cannot prove its
// session. Whatever the zombie appended is its unreplicated tail: once it
// has rejoined the ISR, no consumer reads any of those values and no
// replica's log holds them, every acknowledged record is there once, and
// the three replicas are byte for byte the same below the high watermark.
func TestClusterZombieLeader(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic = "zombie"
	c.CreateTopic(topic, 1, 3, nil)
	// kgo keeps waiting on a request a stopped broker never answers for
	// the produce timeout plus the overhead (20 s by default) before it
	// retries elsewhere; shorter ones let the producer find the new leader
	// while the zombie is still stopped.
	lp := startLoad(t, c, topic, 1, loadOptions{every: 2 * time.Millisecond,
		opts: []kgo.Opt{kgo.ProduceRequestTimeout(3 * time.Second), kgo.RequestTimeoutOverhead(2 * time.Second)}})
	lp.led.waitTotal(t, 200, 2*time.Minute, "before the pause")

	zombie := c.WaitForLeader(topic, 0, -1)
	probes := map[int16]*probe{-1: newProducerProbe(t, c, -1), 1: newProducerProbe(t, c, 1)}
	ctx := testenv.Context(t, 5*time.Minute)
	// Open the produce connections while the leader runs, so the requests
	// below are written into its socket rather than stuck in a handshake.
	for acks, pr := range probes {
		resp, err := rawProduce(ctx, pr, zombie, topic, 0, acks, 10*time.Second, []string{fmt.Sprintf("warm-up acks=%d", acks)})
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("warm-up produce with acks=%d to leader %d: %v %v", acks, zombie, err, kerr.ErrorForCode(resp.ErrorCode))
		}
	}

	var mu sync.Mutex
	var sent []*zombieProduce
	var wg sync.WaitGroup
	send := func(when string, n int) {
		for i := range n {
			for _, acks := range []int16{-1, 1} {
				z := &zombieProduce{acks: acks, sent: when}
				for j := range 3 {
					z.values = append(z.values, fmt.Sprintf("zombie/%s/acks%d/%d/%d", when, acks, i, j))
				}
				mu.Lock()
				sent = append(sent, z)
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := rawProduce(ctx, probes[acks], zombie, topic, 0, acks, 10*time.Second, z.values)
					mu.Lock()
					z.code, z.err = resp.ErrorCode, err
					mu.Unlock()
				}()
			}
		}
	}

	paused := time.Now()
	c.Broker(zombie).Pause()
	send("stopped", 5)
	next := c.WaitForLeader(topic, 0, zombie)
	w, ok := lp.waitWrite(0, zombie, paused, 2*time.Minute)
	if !ok {
		t.Fatalf("no write acknowledged by the new leader %d while %d is stopped", next, zombie)
	}
	t.Logf("leader %d stopped; %d elected and acknowledged a write %v later", zombie, w.node, w.at.Sub(paused).Round(time.Millisecond))
	// The election means the zombie's registration is gone: its session
	// has lapsed. A few more requests queue up behind the first ones.
	send("stopped", 2)
	held := time.Since(paused)
	c.Broker(zombie).Resume()
	send("resumed", 5)
	wg.Wait()

	mu.Lock()
	codes := map[string]int{}
	for _, z := range sent {
		outcome := "ok"
		switch {
		case z.err != nil:
			outcome = transportError(z.err)
		case z.code != 0:
			outcome = kerr.ErrorForCode(z.code).Error()
		}
		codes[fmt.Sprintf("acks=%d sent while %s: %s", z.acks, z.sent, strings.SplitN(outcome, ":", 2)[0])]++
		if outcome == "ok" {
			t.Errorf("zombie leader %d acknowledged a produce with acks=%d sent while %s: %v", zombie, z.acks, z.sent, z.values)
		}
	}
	mu.Unlock()
	t.Logf("stopped for %v; what the zombie answered: %v", held.Round(time.Millisecond), codes)

	c.WaitForBrokers(3)
	c.WaitForISR(topic, 0, 3)
	lp.led.waitTotal(t, lp.led.total()+200, time.Minute, "writes after the zombie rejoined")
	lp.stop()
	lp.requireNoFailures()
	t.Logf("the zombie's log after SIGCONT:\n%s", grepLines(logSince(c.Broker(zombie).Log(), "coord: heartbeats stopped"),
		"heartbeats", "session", "became", "truncated", "refused", "registered"))
	if strings.Contains(logSince(c.Broker(zombie).Log(), "became follower"), "follower truncated its log") {
		t.Logf("the zombie truncated a tail when it rejoined")
	} else {
		t.Logf("the zombie had no tail to truncate (it learnt it was deposed before appending)")
	}

	read := checkLedgers(t, c, topic, 1, lp.led)
	for _, r := range read[0] {
		if strings.HasPrefix(r.value, "zombie/") {
			t.Errorf("a consumer reads %q at offset %d: a zombie's write survived", r.value, r.offset)
		}
	}
	hw := highWatermark(t, c, topic, 0)
	for _, b := range c.Brokers {
		b.Kill()
	}
	nodes := []int32{1, 2, 3}
	for _, id := range nodes {
		log := replicaLog(t, c.Broker(id).DataDir, topic, 0)
		for _, z := range sent {
			for _, v := range z.values {
				if logHas(log, v) {
					t.Errorf("broker %d's log holds the zombie's %q", id, v)
				}
			}
		}
	}
	compareReplicas(t, c, topic, 0, hw, nodes)
}

// logSince is the part of a broker's log from the last line containing
// marker on ("" if there is none).
func logSince(log, marker string) string {
	i := strings.LastIndex(log, marker)
	if i < 0 {
		return ""
	}
	return log[i:]
}

// grepLines keeps the lines of log that contain any of words.
func grepLines(log string, words ...string) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
