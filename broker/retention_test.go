package broker_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

func produceN(t *testing.T, addr, topic string, n int, ts time.Time) {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchMaxBytes(1024),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx := testenv.Context(t, 30*time.Second)
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%05d-%s", i, strings.Repeat("r", 80))), Timestamp: ts}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func startOffsets(t *testing.T, addr, topic string) int64 {
	t.Helper()
	lo, err := kadm.NewClient(newClient(t, addr)).ListStartOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := lo.Lookup(topic, 0)
	return o.Offset
}

// TestRetentionByTimeAndSizeAcrossTiers: with an injected clock, old segments
// go from the bucket and from disk; size retention keeps the log under its
// limit; a consumer in deleted data resets; DeleteRecords reaches into the
// bucket; deleting the topic empties its prefix.
func TestRetentionByTimeAndSizeAcrossTiers(t *testing.T) {
	store, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := clock.NewFake(time.Now())
	b := testenv.StartBroker(t, broker.Options{Remote: store, Clock: clock})
	createTopic(t, b.Addr, "aging", 1, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("4096"),
		"local.retention.bytes": strp("1"),
		"retention.ms":          strp("3600000"),
	})
	ctx := testenv.Context(t, 60*time.Second)
	produceN(t, b.Addr, "aging", 300, clock.Now())
	b.TieringPass(ctx)
	remoteLogs := func() int {
		objs, _ := store.List(ctx, "aging/0/")
		n := 0
		for _, o := range objs {
			if strings.HasSuffix(o.Key, ".log") {
				n++
			}
		}
		return n
	}
	before := remoteLogs()
	if before < 3 {
		t.Fatalf("only %d remote segments", before)
	}
	// Younger than retention.ms: nothing goes.
	b.RetentionPass(ctx)
	if got := startOffsets(t, b.Addr, "aging"); got != 0 {
		t.Fatalf("log start moved to %d before retention.ms passed", got)
	}
	// Two hours later the old data (already appended, so its file times
	// are in the real past too) is due.
	clock.Advance(2 * time.Hour)
	produceN(t, b.Addr, "aging", 50, clock.Now()) // fresh data in the active segment
	b.RetentionPass(ctx)
	start := startOffsets(t, b.Addr, "aging")
	if start < 300 {
		t.Fatalf("log start %d after retention, want >= 300", start)
	}
	if n := remoteLogs(); n >= before {
		t.Fatalf("%d remote segments after retention, had %d", n, before)
	}
	// The deletions show per partition in the metrics.
	rec := httptest.NewRecorder()
	b.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	metrics := rec.Body.String()
	for _, name := range []string{"strata_partition_remote_segments_deleted_total", "strata_partition_last_retention_pass_timestamp_seconds"} {
		line := ""
		for _, l := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(l, name+`{partition="0",topic="aging"}`) {
				line = l
			}
		}
		if line == "" || strings.HasSuffix(line, " 0") {
			t.Errorf("metric %s for aging-0: %q", name, line)
		}
	}
	// A consumer positioned in deleted data resets to the start.
	cl := newClient(t, b.Addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"aging": {0: kgo.NewOffset().At(10)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fs := cl.PollFetches(ctx)
	if recs := fs.Records(); len(recs) == 0 || recs[0].Offset != start {
		t.Fatalf("reset consumer got %d records, first at %v, want the new start %d", len(recs), recs, start)
	}

	// Size retention on a second topic keeps the whole log under its limit.
	createTopic(t, b.Addr, "sized", 1, map[string]*string{"segment.bytes": strp("4096"), "retention.bytes": strp("10000")})
	produceN(t, b.Addr, "sized", 500, clock.Now())
	b.RetentionPass(ctx)
	dirs, err := kadm.NewClient(newClient(t, b.Addr)).DescribeAllLogDirs(ctx, kadm.TopicsSet{"sized": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) { size += p.Size })
	})
	if size == 0 || size > 10000+4096 {
		t.Fatalf("size retention left %d bytes (limit 10000, segments of 4096)", size)
	}

	// DeleteRecords below the local start removes remote segments.
	createTopic(t, b.Addr, "trimmed", 1, map[string]*string{"remote.storage.enable": strp("true"), "segment.bytes": strp("4096"), "local.retention.bytes": strp("1")})
	produceN(t, b.Addr, "trimmed", 300, clock.Now())
	b.TieringPass(ctx)
	trimBefore, _ := store.List(ctx, "trimmed/0/")
	adm := kadm.NewClient(newClient(t, b.Addr))
	drs, err := adm.DeleteRecords(ctx, kadm.Offsets{"trimmed": {0: {At: 150}}})
	if err != nil {
		t.Fatal(err)
	}
	if dr, _ := drs.Lookup("trimmed", 0); dr.Err != nil || dr.LowWatermark < 150 {
		t.Fatalf("delete records: %v low watermark %d", dr.Err, dr.LowWatermark)
	}
	trimAfter, _ := store.List(ctx, "trimmed/0/")
	if len(trimAfter) >= len(trimBefore) {
		t.Fatalf("DeleteRecords left %d objects (had %d)", len(trimAfter), len(trimBefore))
	}
	if got := startOffsets(t, b.Addr, "trimmed"); got != 150 {
		t.Fatalf("start after DeleteRecords: %d", got)
	}
	recs := testenv.ReadAll(t, b.Addr, "trimmed")
	if len(recs) != 150 || recs[0].Offset != 150 {
		t.Fatalf("after DeleteRecords read %d records from %d", len(recs), recs[0].Offset)
	}

	// Deleting a topic empties its prefix.
	if r, err := adm.DeleteTopics(ctx, "trimmed"); err != nil || r["trimmed"].Err != nil {
		t.Fatalf("delete topic: %v %v", err, r["trimmed"].Err)
	}
	if objs, _ := store.List(ctx, "trimmed/"); len(objs) != 0 {
		t.Fatalf("%d objects left under trimmed/ after topic deletion", len(objs))
	}
}
