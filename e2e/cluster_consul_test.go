package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/testenv"
)

// heartbeatInterval is broker.heartbeat.interval.ms in faultConfigs.
const heartbeatInterval = 500 * time.Millisecond

// TestClusterConsulOutage is fault 7: Consul is killed (SIGKILL) for
// -cluster.consul-outage (default 10 s here to keep the suite short; the
// issue asks for 30 s: STRATA_CONSUL_OUTAGE=30s), then started again on
// its data. Meanwhile an idempotent acks=all kgo producer, raw acks=all and
// acks=1 writers (one request at a time per partition, each to the leader
// metadata names, recording which broker acknowledged what at which leader
// epoch), a consumer and a metadata sampler run. What the design says and
// the test asserts:
//
//   - reads keep working: the consumer reads records throughout;
//   - acks=all writes keep working on the existing leaders (no ISR needs
//     to change): acknowledged during the outage;
//   - acks=0/1 writes are refused once a broker can no longer prove its
//     session: none sent later than session timeout + heartbeat interval
//     after the kill is acknowledged before Consul is back;
//   - no elections: every broker's metadata names the same leaders at the
//     same epochs throughout the outage;
//   - nothing acknowledged with acks=all is lost, and at no time do two
//     brokers acknowledge writes as leader of one partition: per partition
//     and leader epoch — the epoch metadata named when the request was sent
//     and the epoch stamped in the batch in the final log — one broker.
//
// The test logs what it saw, outage and recovery, for README.
func TestClusterConsulOutage(t *testing.T) {
	c := startFaultCluster(t, testenv.ClusterOptions{})
	const topic, parts = "outage", 3
	c.CreateTopic(topic, parts, 3, nil)
	lp := startLoad(t, c, topic, parts, loadOptions{every: 10 * time.Millisecond})
	all := startRawWriter(t, c, topic, parts, -1, "rawall", 20*time.Millisecond)
	one := startRawWriter(t, c, topic, parts, 1, "rawone", 20*time.Millisecond)
	rd := startReader(t, c, topic, parts)
	ms := startMetaSampler(t, c, topic, parts)
	lp.led.waitTotal(t, 300, 2*time.Minute, "before the outage")
	all.led.waitTotal(t, 50, time.Minute, "raw acks=all before the outage")
	one.led.waitTotal(t, 50, time.Minute, "raw acks=1 before the outage")
	before := ms.last()

	killed := time.Now()
	c.Consul.Stop()
	time.Sleep(*consulOutage) // holds the fault
	restarted := time.Now()
	c.Consul.Start()
	back := time.Since(restarted)

	// Recovery: every broker registered again, every ISR full, acks=1
	// taken again.
	c.WaitForBrokers(3)
	waitAllISR(c, topic, parts, 3)
	isrFull := time.Since(restarted)
	until(t, 2*time.Minute, "acks=1 acknowledged again", func() (bool, string) {
		return one.ackedBetween(restarted, time.Now().Add(time.Hour)) > 0, fmt.Sprint(one.refusedBetween(restarted, time.Now()))
	})
	var firstOne time.Duration
	for _, a := range one.acked() {
		if a.sent.After(restarted) && (firstOne == 0 || a.at.Sub(restarted) < firstOne) {
			firstOne = a.at.Sub(restarted)
		}
	}
	lp.led.waitTotal(t, lp.led.total()+300, 2*time.Minute, "writes after the outage")
	ms.stop()
	rd.stop()
	one.stop()
	all.stop()
	lp.stop()

	lapse := killed.Add(sessionTimeout + heartbeatInterval)
	t.Logf("Consul down %v (killed, then started on its data; it answered again %v after the start)", restarted.Sub(killed).Round(time.Millisecond), back.Round(time.Millisecond))
	t.Logf("during the outage: idempotent acks=all producer: %d records acknowledged; raw acks=all: %d requests acknowledged, refused %v",
		countAcks(lp.led, parts, killed, restarted), all.ackedBetween(killed, restarted), all.refusedBetween(killed, restarted))
	lastOne := time.Time{}
	for _, a := range one.acked() {
		if a.sent.After(killed) && a.sent.Before(restarted) && a.sent.After(lastOne) {
			lastOne = a.sent
		}
	}
	t.Logf("during the outage: raw acks=1: %d requests acknowledged, the last sent %v after the kill; refused before the session lapse %v, after %v",
		one.ackedBetween(killed, restarted), lastOne.Sub(killed).Round(time.Millisecond), one.refusedBetween(killed, lapse), one.refusedBetween(lapse, restarted))
	t.Logf("during the outage: the consumer read %d records (%d after the sessions lapsed)", rd.between(killed, restarted), rd.between(lapse, restarted))
	t.Logf("after the start: every ISR full %v later, acks=1 acknowledged again %v later", isrFull.Round(time.Millisecond), firstOne.Round(time.Millisecond))
	t.Logf("leaders before the outage: %v", before)
	t.Logf("partition state changes seen by the metadata sampler (time from the kill):\n%s", ms.changes(killed))
	for _, b := range c.Brokers {
		t.Logf("broker %d after the kill:\n%s", b.NodeID, grepLines(b.Log()[len(b.Log())-min(len(b.Log()), 20000):],
			"coord:", "controller", "lost", "ISR changed", "became", "not resuming", "rejected", "not written"))
	}

	if n := countAcks(lp.led, parts, killed.Add(time.Second), restarted); n == 0 {
		t.Errorf("no acks=all record acknowledged during the outage: leaders should keep taking acks=all writes")
	}
	if n := rd.between(lapse, restarted); n == 0 {
		t.Errorf("the consumer read nothing once the sessions had lapsed: reads should keep working")
	}
	for _, a := range one.acked() {
		if a.sent.After(lapse) && a.sent.Before(restarted) {
			t.Errorf("broker %d acknowledged an acks=1 write to %s-%d sent %v after Consul was killed (session timeout %v)",
				a.node, topic, a.partition, a.sent.Sub(killed).Round(time.Millisecond), sessionTimeout)
		}
	}
	for _, s := range ms.during(killed, restarted) {
		if b, ok := before[s.partition]; ok && (s.leader != b.leader || s.epoch != b.epoch) {
			t.Errorf("during the outage broker %d named leader %d at epoch %d for %s-%d (before: %d at %d)",
				s.from, s.leader, s.epoch, topic, s.partition, b.leader, b.epoch)
		}
	}
	lp.requireNoFailures()
	read := checkLedgers(t, c, topic, parts, lp.led, all.led)
	checkOneLeaderPerEpoch(t, topic, read, all, one)
	have := map[string]bool{}
	for _, recs := range read {
		for _, r := range recs {
			have[r.value] = true
		}
	}
	lost := 0
	for p := range int32(parts) {
		for _, a := range one.led.acked(p) {
			if !have[a.value] {
				lost++
			}
		}
	}
	t.Logf("acks=1: %d of %d acknowledged records are not in the final log", lost, one.led.total())
}

// countAcks counts a ledger's records acknowledged in [from, to).
func countAcks(l *ledger, parts int32, from, to time.Time) int {
	n := 0
	for p := range parts {
		for _, a := range l.acked(p) {
			if !a.at.Before(from) && a.at.Before(to) {
				n++
			}
		}
	}
	return n
}

// reader consumes a topic from its start and remembers how many records
// each poll returned, and when.
type reader struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     struct {
		sync.Mutex
		polls []readPoll
	}
}

type readPoll struct {
	at time.Time
	n  int
}

func startReader(t *testing.T, c *testenv.Cluster, topic string, parts int32) *reader {
	offsets := map[int32]kgo.Offset{}
	for p := range parts {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := c.Client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(200*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if n := fs.NumRecords(); n > 0 {
				r.mu.Lock()
				r.mu.polls = append(r.mu.polls, readPoll{at: time.Now(), n: n})
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *reader) stop() {
	r.cancel()
	<-r.done
}

// between counts the records read in [from, to).
func (r *reader) between(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.mu.polls {
		if !p.at.Before(from) && p.at.Before(to) {
			n += p.n
		}
	}
	return n
}

// metaSample is one broker's answer about one partition.
type metaSample struct {
	at              time.Time
	from, partition int32
	leader, epoch   int32
	isr             []int32
}

// metaSampler asks every broker for a topic's partition states every 250 ms.
type metaSampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     struct {
		sync.Mutex
		samples []metaSample
	}
}

func startMetaSampler(t *testing.T, c *testenv.Cluster, topic string, parts int32) *metaSampler {
	pr := newProbe(t, c)
	ctx, cancel := context.WithCancel(context.Background())
	m := &metaSampler{cancel: cancel, done: make(chan struct{})}
	brokers := int32(len(c.Brokers))
	go func() {
		defer close(m.done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			for id := int32(1); id <= brokers; id++ {
				md, err := pr.metadata(ctx, id, topic)
				now := time.Now()
				if err != nil {
					continue
				}
				for _, mt := range md.Topics {
					for _, mp := range mt.Partitions {
						isr := slices.Clone(mp.ISR)
						slices.Sort(isr)
						m.mu.Lock()
						m.mu.samples = append(m.mu.samples, metaSample{at: now, from: id, partition: mp.Partition, leader: mp.Leader, epoch: mp.LeaderEpoch, isr: isr})
						m.mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *metaSampler) stop() {
	m.cancel()
	<-m.done
}

// leaderAt is a partition's leader and leader epoch.
type leaderAt struct{ leader, epoch int32 }

func (l leaderAt) String() string { return fmt.Sprintf("%d@%d", l.leader, l.epoch) }

// last is each partition's state in the newest samples.
func (m *metaSampler) last() map[int32]leaderAt {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int32]leaderAt{}
	for _, s := range m.mu.samples {
		out[s.partition] = leaderAt{s.leader, s.epoch}
	}
	return out
}

// during lists the samples taken in [from, to).
func (m *metaSampler) during(from, to time.Time) []metaSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []metaSample
	for _, s := range m.mu.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// changes describes, per broker and partition, every change of leader,
// epoch or ISR the samples show, with its time relative to ref.
func (m *metaSampler) changes(ref time.Time) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	type key struct{ from, p int32 }
	last := map[key]metaSample{}
	var lines []string
	for _, s := range m.mu.samples {
		k := key{s.from, s.partition}
		prev, ok := last[k]
		if !ok || prev.leader != s.leader || prev.epoch != s.epoch || !slices.Equal(prev.isr, s.isr) {
			lines = append(lines, fmt.Sprintf("%8v broker %d: p%d leader %d epoch %d isr %v", s.at.Sub(ref).Round(time.Millisecond), s.from, s.partition, s.leader, s.epoch, s.isr))
		}
		last[k] = s
	}
	return strings.Join(lines, "\n")
}
