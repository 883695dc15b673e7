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
	metric := func(b *testenv.InProcess, name string) float64 { return scrapeAll(t, b)[name] }
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
	if metric(b, sessions) != 1 || metric(b, incremental) == 0 {
		t.Fatalf("consumer A: %v sessions, %v incremental fetches", metric(b, sessions), metric(b, incremental))
	}

	// Past the eviction age, B (more partitions) takes the only slot.
	fake.Advance(3 * time.Minute)
	bc := newSessionConsumer(t, addr, "many", many)
	bc.read(ctx, round("many", many))
	if metric(b, evictions) != 1 || metric(b, sessions) != 1 {
		t.Fatalf("after B: %v evictions, %v sessions", metric(b, evictions), metric(b, sessions))
	}
	// A's session is gone: it is told so, resets, finds no room (B is
	// young and bigger) and fetches without a session from then on.
	for range 2 {
		a.read(ctx, round("few", few))
	}
	bc.read(ctx, round("many", many))
	if metric(b, notFound) == 0 || metric(b, sessionless) == 0 || metric(b, evictions) != 1 {
		t.Fatalf("evicted consumer: %v session errors, %v sessionless fetches, %v evictions", metric(b, notFound), metric(b, sessionless), metric(b, evictions))
	}

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
	if metric(b2, full) == 0 || metric(b2, sessions) != 1 || metric(b2, incremental) == 0 || metric(b2, sessionless) == 0 {
		t.Fatalf("after restart: %v full fetches, %v sessions, %v incremental, %v sessionless",
			metric(b2, full), metric(b2, sessions), metric(b2, incremental), metric(b2, sessionless))
	}
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
