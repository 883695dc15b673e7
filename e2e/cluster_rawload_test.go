package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/testenv"
)

// rawAck is one Produce a broker acknowledged to a rawWriter: which broker,
// the leader epoch metadata named when the request was sent, and the
// offsets it answered.
type rawAck struct {
	partition int32
	node      int32
	epoch     int32 // from metadata at the time of sending
	base      int64
	n         int
	first     string // the first record's value
	sent, at  time.Time
}

// rawRefusal is one attempt that was not acknowledged.
type rawRefusal struct {
	partition int32
	sent      time.Time
	why       string
}

// rawWriter produces with raw Produce requests, one at a time per
// partition, each to the broker metadata names leader, without retries:
// every attempt carries new values, so nothing is ever stored twice by a
// retry, and every acknowledgement is known with the broker that gave it.
// It is the tool for checking who acknowledged what (at most one broker per
// leader epoch) and for writing with acks=1 next to an idempotent producer.
type rawWriter struct {
	t          *testing.T
	pr         *probe
	topic      string
	partitions int32
	acks       int16
	perReq     int
	every      time.Duration
	led        *ledger

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		acks    []rawAck
		refused []rawRefusal
	}
}

// startRawWriter starts one writer goroutine per partition.
func startRawWriter(t *testing.T, c *testenv.Cluster, topic string, partitions int32, acks int16, tag string, every time.Duration) *rawWriter {
	w := &rawWriter{t: t, pr: newProducerProbe(t, c, acks), topic: topic, partitions: partitions, acks: acks, perReq: 5, every: every, led: newLedger(tag)}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for p := range partitions {
		w.wg.Add(1)
		go w.run(ctx, p, len(c.Brokers))
	}
	t.Cleanup(func() {
		w.halt()
		if t.Failed() {
			t.Logf("raw writer %s (acks=%d): %d acknowledged; refusals %v", tag, acks, w.led.total(), w.errorCounts())
		}
	})
	return w
}

// leader asks every broker for p's leader at once and takes the newest
// leader epoch among the answers that come within a moment of the first
// (a stopped broker never answers; one that lags names an older leader).
func (w *rawWriter) leader(ctx context.Context, p int32, brokers int) (int32, int32) {
	type answer struct{ leader, epoch int32 }
	ch := make(chan answer, brokers)
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for id := int32(1); id <= int32(brokers); id++ {
		go func() {
			st, err := w.pr.state(qctx, id, w.topic, p)
			if err != nil || st.Leader < 0 {
				ch <- answer{-1, -1}
				return
			}
			ch <- answer{st.Leader, st.LeaderEpoch}
		}()
	}
	best := answer{-1, -1}
	var grace <-chan time.Time
	for range brokers {
		select {
		case a := <-ch:
			if a.leader >= 0 && a.epoch > best.epoch {
				best = a
				if grace == nil {
					grace = time.After(200 * time.Millisecond)
				}
			}
			continue
		case <-grace:
		case <-qctx.Done():
		}
		break
	}
	return best.leader, best.epoch
}

func (w *rawWriter) run(ctx context.Context, p int32, brokers int) {
	defer w.wg.Done()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	leader, epoch := int32(-1), int32(-1)
	var seq int64
	for ctx.Err() == nil {
		if leader < 0 {
			leader, epoch = w.leader(ctx, p, brokers)
		}
		if leader >= 0 {
			values := make([]string, w.perReq)
			for i := range values {
				values[i] = w.led.value(p, seq+int64(i), 60)
			}
			first := seq
			seq += int64(w.perReq)
			sent := time.Now()
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			resp, err := rawProduce(rctx, w.pr, leader, w.topic, p, w.acks, 10*time.Second, values)
			cancel()
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				w.failed(p, sent, transportError(err))
				leader = -1
			case resp.ErrorCode != 0:
				w.failed(p, sent, kerr.ErrorForCode(resp.ErrorCode).Error())
				leader = -1
				if resp.CurrentLeader.LeaderID >= 0 {
					leader, epoch = resp.CurrentLeader.LeaderID, resp.CurrentLeader.LeaderEpoch
				}
			default:
				now := time.Now()
				for i, v := range values {
					w.led.ack(p, ackRec{value: v, seq: first + int64(i), offset: resp.BaseOffset + int64(i), at: now})
				}
				w.mu.Lock()
				w.mu.acks = append(w.mu.acks, rawAck{partition: p, node: leader, epoch: epoch, base: resp.BaseOffset, n: len(values), first: values[0], sent: sent, at: now})
				w.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (w *rawWriter) failed(p int32, sent time.Time, why string) {
	w.mu.Lock()
	w.mu.refused = append(w.mu.refused, rawRefusal{partition: p, sent: sent, why: strings.SplitN(why, ":", 2)[0]})
	w.mu.Unlock()
}

func (w *rawWriter) halt() {
	w.cancel()
	w.wg.Wait()
}

// stop halts the writer and logs its counts.
func (w *rawWriter) stop() {
	w.t.Helper()
	w.halt()
	w.t.Logf("raw writer %s (acks=%d): %d records acknowledged; refusals %v", w.led.tag, w.acks, w.led.total(), w.errorCounts())
}

// errorCounts counts the refusals by kind.
func (w *rawWriter) errorCounts() map[string]int {
	return w.refusedBetween(time.Time{}, time.Now().Add(time.Hour))
}

// refusedBetween counts by kind the refusals of requests sent in [from, to).
func (w *rawWriter) refusedBetween(from, to time.Time) map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, r := range w.mu.refused {
		if !r.sent.Before(from) && r.sent.Before(to) {
			out[r.why]++
		}
	}
	return out
}

func (w *rawWriter) acked() []rawAck {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]rawAck(nil), w.mu.acks...)
}

// ackedBetween counts acknowledged requests sent in [from, to).
func (w *rawWriter) ackedBetween(from, to time.Time) int {
	n := 0
	for _, a := range w.acked() {
		if !a.sent.Before(from) && a.sent.Before(to) {
			n++
		}
	}
	return n
}

// checkOneLeaderPerEpoch checks that, per partition, every leader epoch's
// acknowledgements came from one broker, both by the epoch metadata named
// when each request was sent and by the epoch stamped in the batch that
// holds the acknowledged records in the final log (read). An acks=1 write
// a deposed leader acknowledged and then lost to truncation is not in the
// final log: it counts by metadata only.
func checkOneLeaderPerEpoch(t *testing.T, topic string, read map[int32][]readRec, writers ...*rawWriter) {
	t.Helper()
	type key struct {
		p     int32
		epoch int32
	}
	byMeta, byLog := map[key]map[int32]int{}, map[key]map[int32]int{}
	add := func(m map[key]map[int32]int, k key, node int32) {
		if m[k] == nil {
			m[k] = map[int32]int{}
		}
		m[k][node]++
	}
	for _, w := range writers {
		for _, a := range w.acked() {
			add(byMeta, key{a.partition, a.epoch}, a.node)
			recs := read[a.partition]
			i := sort.Search(len(recs), func(i int) bool { return recs[i].offset >= a.base })
			if i < len(recs) && recs[i].offset == a.base && recs[i].value == a.first {
				add(byLog, key{a.partition, recs[i].epoch}, a.node)
			}
		}
	}
	for what, m := range map[string]map[key]map[int32]int{"metadata": byMeta, "log": byLog} {
		var summary []string
		for k, nodes := range m {
			if len(nodes) > 1 {
				t.Errorf("%s-%d: leader epoch %d (by %s) acknowledged by several brokers: %v", topic, k.p, k.epoch, what, nodes)
			}
			summary = append(summary, fmt.Sprintf("p%d@%d:%v", k.p, k.epoch, nodes))
		}
		sort.Strings(summary)
		t.Logf("%s: acknowledging broker per partition@epoch (by %s): %v", topic, what, summary)
	}
}

// transportError names a request failure without the addresses in it, so
// that refusals can be counted by kind.
func transportError(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	return err.Error()
}
