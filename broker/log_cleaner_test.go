package broker_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// TestLogCleanerCompactsTopic: a compacted topic with small segments and
// many updates for a few keys, one cleaner pass, then a consumer from the
// start sees each key's latest value, offsets only increasing, and far
// fewer records than were produced (only the active segment keeps its
// history). A topic with cleanup.policy=delete is left alone.
func TestLogCleanerCompactsTopic(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	str := func(s string) *string { return &s }
	compactCfg := map[string]*string{"cleanup.policy": str("compact"), "segment.bytes": str("2048")}
	createTopic(t, b.Addr, "compacted", 1, compactCfg)
	createTopic(t, b.Addr, "plain", 1, map[string]*string{"segment.bytes": str("2048")})

	ctx := testenv.Context(t, 60*time.Second)
	const keys, updates = 8, 1500
	latest := map[string]string{}
	for _, topic := range []string{"compacted", "plain"} {
		cl := newClient(t, b.Addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
		for i := 0; i < updates; i += 25 {
			var recs []*kgo.Record
			for j := i; j < i+25; j++ {
				k, v := fmt.Sprintf("key-%d", j%keys), fmt.Sprintf("value-%d", j)
				recs = append(recs, &kgo.Record{Key: []byte(k), Value: []byte(v)})
				latest[k] = v
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}

	if err := b.Broker.CleanLogs(ctx); err != nil {
		t.Fatalf("CleanLogs: %v", err)
	}

	got := consumeToEnd(t, ctx, b.Addr, "compacted")
	last := map[string]string{}
	prev := int64(-1)
	for _, r := range got {
		if r.Offset <= prev {
			t.Fatalf("offset %d after %d", r.Offset, prev)
		}
		prev = r.Offset
		last[string(r.Key)] = string(r.Value)
	}
	for k, v := range latest {
		if last[k] != v {
			t.Fatalf("key %s: latest %q, want %q", k, last[k], v)
		}
	}
	if prev != updates-1 {
		t.Fatalf("last offset %d, want %d", prev, updates-1)
	}
	t.Logf("%d of %d records remain after one pass", len(got), updates)
	if len(got) > updates/3 {
		t.Fatalf("%d of %d records remain after compaction", len(got), updates)
	}
	if plain := consumeToEnd(t, ctx, b.Addr, "plain"); len(plain) != updates {
		t.Fatalf("cleanup.policy=delete topic has %d of %d records", len(plain), updates)
	}
}

// consumeToEnd reads topic (partition 0) from the start up to its high
// watermark.
func consumeToEnd(t *testing.T, ctx context.Context, addr, topic string) []*kgo.Record {
	t.Helper()
	ends, err := kadm.NewClient(newClient(t, addr)).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	cl := newClient(t, addr, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var out []*kgo.Record
	for len(out) == 0 || out[len(out)-1].Offset < end.Offset-1 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d records of %s: %v", len(out), topic, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// Records without a key written while a topic was cleanup.policy=delete stay
// readable after it becomes compacted and is cleaned (Strata keeps what
// nothing supersedes; Kafka's cleaner would drop them), while new keyless
// records are refused and keyed ones are compacted as usual.
func TestLogCleanerKeepsKeylessRecordsFromBeforeCompaction(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	str := func(s string) *string { return &s }
	createTopic(t, b.Addr, "was-delete", 1, map[string]*string{"segment.bytes": str("2048")})
	ctx := testenv.Context(t, 60*time.Second)
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("was-delete"))
	const updates = 600
	keyless := map[string]bool{}
	for i := 0; i < updates; i += 20 {
		var recs []*kgo.Record
		for j := i; j < i+20; j++ {
			if j%10 == 0 {
				v := fmt.Sprintf("keyless-%d", j)
				keyless[v] = true
				recs = append(recs, &kgo.Record{Value: []byte(v)})
				continue
			}
			recs = append(recs, &kgo.Record{Key: []byte(fmt.Sprintf("key-%d", j%4)), Value: []byte(fmt.Sprintf("value-%d", j))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: str("compact")}}, "was-delete")
	if err != nil || rs[0].Err != nil {
		t.Fatalf("alter to compact: %v %v", err, rs)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("late keyless")}).FirstErr(); !errors.Is(err, kerr.InvalidRecord) {
		t.Fatalf("keyless record after the switch: %v, want INVALID_RECORD", err)
	}
	if err := b.Broker.CleanLogs(ctx); err != nil {
		t.Fatal(err)
	}
	got := consumeToEnd(t, ctx, b.Addr, "was-delete")
	seen := 0
	for _, r := range got {
		if r.Key == nil {
			if !keyless[string(r.Value)] {
				t.Fatalf("unexpected keyless record %q", r.Value)
			}
			seen++
		}
	}
	if seen != len(keyless) {
		t.Fatalf("%d of %d keyless records survived cleaning", seen, len(keyless))
	}
	if len(got) >= updates-updates/5 {
		t.Fatalf("%d of %d records remain: keyed records were not compacted", len(got), updates)
	}
}
