package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/testenv"
)

// sessionConsumer is a kgo consumer of every partition of one topic,
// checking that each partition's records arrive once and in order.
type sessionConsumer struct {
	t     *testing.T
	cl    *kgo.Client
	topic string
	next  map[int32]int // next expected sequence number per partition
}

func newSessionConsumer(t *testing.T, addr, topic string, partitions int32) *sessionConsumer {
	offsets := map[int32]kgo.Offset{}
	for p := range partitions {
		offsets[p] = kgo.NewOffset().AtStart()
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}), kgo.FetchMaxWait(time.Second))
	return &sessionConsumer{t: t, cl: cl, topic: topic, next: map[int32]int{}}
}

// read polls until n more records have arrived.
func (c *sessionConsumer) read(ctx context.Context, n int) {
	c.t.Helper()
	for got := 0; got < n; {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("%s: read %d of %d records: %v", c.topic, got, n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			want := fmt.Sprintf("%s-%d-%d", c.topic, r.Partition, c.next[r.Partition])
			if string(r.Value) != want {
				c.t.Fatalf("%s-%d: got %q, want %q (lost, repeated or out of order)", c.topic, r.Partition, r.Value, want)
			}
			c.next[r.Partition]++
			got++
		})
		if got > n {
			c.t.Fatalf("%s: %d records, want %d", c.topic, got, n)
		}
	}
}

// franz-go consumers use fetch sessions (kgo does unless told not to): with
// one session slot, a consumer of many partitions evicts an old session of
// fewer partitions; the evicted consumer gets FETCH_SESSION_ID_NOT_FOUND,
// finds no room and goes on sessionless; after a broker restart the
// surviving consumer's session is gone, it resets and opens a new one.
// Every record arrives once, in order, throughout.
func TestFetchSessionsFranzGoEvictionAndRestart(t *testing.T) {
	settings := map[string]string{"max.incremental.fetch.session.cache.slots": "1"}
	dir := t.TempDir()
	fake := clock.NewFake(time.Now())
	b := testenv.StartBroker(t, broker.Options{DataDir: dir, Clock: fake, Settings: settings})
	addr := b.Addr
	const few, many = 4, 12
	createTopic(t, addr, "few", few, nil)
	createTopic(t, addr, "many", many, nil)
	ctx := testenv.Context(t, 2*time.Minute)

	producer := newClient(t, addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	sent := map[string]int{}
	round := func(topic string, partitions int32) int {
		var recs []*kgo.Record
		for p := range partitions {
			for range 5 {
				key := fmt.Sprintf("%s-%d", topic, p)
				recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(fmt.Sprintf("%s-%d", key, sent[key]))})
				sent[key]++
			}
		}
		if err := producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
		return len(recs)
	}
	// expect waits for a condition over one scrape: the broker counts a
	// fetch after writing its response, so a client can see the answer a
	// moment before the counter moves.
	expect := func(b *testenv.InProcess, what string, ok func(m map[string]float64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			m := scrapeAll(t, b)
			if ok(m) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: metrics %v", what, m)
			}
			time.Sleep(10 * time.Millisecond) // polling the counters
		}
	}
	const (
		sessions    = "strata_fetch_sessions"
		evictions   = "strata_fetch_session_evictions_total"
		incremental = `strata_fetch_session_requests_total{kind="incremental"}`
		notFound    = `strata_fetch_session_requests_total{kind="error"}`
		sessionless = `strata_fetch_session_requests_total{kind="sessionless"}`
		full        = `strata_fetch_session_requests_total{kind="full"}`
	)

	// A reads "few" with a session; its second round comes through an
	// incremental fetch.
	a := newSessionConsumer(t, addr, "few", few)
	a.read(ctx, round("few", few))
	a.read(ctx, round("few", few))
	expect(b, "consumer A", func(m map[string]float64) bool { return m[sessions] == 1 && m[incremental] > 0 })

	// Past the eviction age, B (more partitions) takes the only slot.
	fake.Advance(3 * time.Minute)
	bc := newSessionConsumer(t, addr, "many", many)
	bc.read(ctx, round("many", many))
	expect(b, "after B", func(m map[string]float64) bool { return m[evictions] == 1 && m[sessions] == 1 })
	// A's session is gone: it is told so, resets, finds no room (B is
	// young and bigger) and fetches without a session from then on.
	for range 2 {
		a.read(ctx, round("few", few))
	}
	bc.read(ctx, round("many", many))
	expect(b, "evicted consumer", func(m map[string]float64) bool {
		return m[notFound] > 0 && m[sessionless] > 0 && m[evictions] == 1
	})

	// Restart: sessions are not persisted. kgo resets its session on the
	// broken connection, so B opens a new one with a full fetch (a raw
	// incremental fetch after a restart is refused: see
	// TestFetchSessionGoneAfterRestart); A stays sessionless.
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	b2 := testenv.StartBroker(t, broker.Options{DataDir: dir, Listen: addr, Clock: clock.NewFake(time.Now()), Settings: settings})
	for range 2 {
		bc.read(ctx, round("many", many))
		a.read(ctx, round("few", few))
	}
	expect(b2, "after restart", func(m map[string]float64) bool {
		return m[full] > 0 && m[sessions] == 1 && m[incremental] > 0 && m[sessionless] > 0
	})
	for key, n := range sent {
		c := a
		if key[:4] == "many" {
			c = bc
		}
		var p int32
		fmt.Sscanf(key[len(c.topic)+1:], "%d", &p)
		if c.next[p] != n {
			t.Fatalf("%s: read %d of %d records", key, c.next[p], n)
		}
	}
}
