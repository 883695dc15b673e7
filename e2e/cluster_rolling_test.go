package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/testenv"
)

// TestClusterRollingRestart is fault 10: under a continuous acks=all
// idempotent producer, each broker in turn gets SIGTERM (a controlled
// shutdown: its leaderships move to other ISR members before it stops),
// exits cleanly, is started again, and the next one goes only once every
// ISR is full again. Each broker must report that it left with no
// leadership it could have moved; for every partition it led, the time
// from SIGTERM to the first write another broker acknowledged is logged
// (leadership moved, not timed out: compare with the kill -9 failovers,
// which wait for broker.session.timeout.ms). Nothing acknowledged is lost,
// nothing is stored twice, and no record fails.
func TestClusterRollingRestart(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic, parts = "rolling", 6
	c.CreateTopic(topic, parts, 3, nil)
	lp := startLoad(t, c, topic, parts, loadOptions{})
	lp.led.waitTotal(t, 300, 2*time.Minute, "before the rolling restart")

	var moves []time.Duration
	for _, b := range c.Brokers {
		var led []int32
		for p := range int32(parts) {
			if c.WaitForLeader(topic, p, -1) == b.NodeID {
				led = append(led, p)
			}
		}
		termAt := time.Now()
		if err := b.Stop(); err != nil {
			t.Fatalf("SIGTERM of broker %d: %v", b.NodeID, err)
		}
		stopped := time.Since(termAt)
		tail := logSince(b.Log(), "controlled shutdown: moving leaderships away")
		switch {
		case strings.Contains(tail, "controlled shutdown: no leaderships left to move"):
		case len(led) == 0 && !strings.Contains(tail, "timed out"):
			// Nothing to move: the shutdown does not even start.
		default:
			t.Errorf("broker %d (leader of %v) did not hand its leaderships over before stopping:\n%s", b.NodeID, led,
				grepLines(tail, "controlled shutdown"))
		}
		for _, p := range led {
			w, ok := lp.waitWrite(p, b.NodeID, termAt, 2*time.Minute)
			if !ok {
				t.Fatalf("no write to %s-%d acknowledged by another broker after broker %d's SIGTERM", topic, p, b.NodeID)
			}
			moves = append(moves, w.at.Sub(termAt))
		}
		t.Logf("broker %d (leader of %v) stopped in %v", b.NodeID, led, stopped.Round(time.Millisecond))
		b.Restart()
		c.WaitForBrokers(3)
		waitAllISR(c, topic, parts, 3)
		lp.led.waitTotal(t, lp.led.total()+int(parts)*20, time.Minute, "writes after the restart")
	}
	lp.stop()
	lp.requireNoFailures()
	checkLedgers(t, c, topic, parts, lp.led)
	p50, p99 := percentiles(moves)
	t.Logf("SIGTERM -> first write acknowledged by the new leader, over %d partition moves: p50 %v, p99 %v",
		len(moves), p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	hw := highWatermark(t, c, topic, 0)
	for _, b := range c.Brokers {
		b.Kill()
	}
	compareReplicas(t, c, topic, 0, hw, []int32{1, 2, 3})
}
