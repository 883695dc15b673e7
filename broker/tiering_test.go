package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// TestTieredTopicReadsFromTheBucket: segments roll, are copied to the store,
// local retention removes them from disk, and a consumer from offset 0 reads
// everything back — from the bucket — byte for byte.
func TestTieredTopicReadsFromTheBucket(t *testing.T) {
	store, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.StartBroker(t, broker.Options{Remote: store, Settings: map[string]string{"remote.fetch.chunk.bytes": "65536"}})
	createTopic(t, b.Addr, "tiered", 2, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("16384"),
		"local.retention.bytes": strp("1"),
	})
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("tiered"), kgo.ProducerLinger(time.Millisecond), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(4096))
	ctx := testenv.Context(t, 60*time.Second)
	const n = 3000
	want := map[string]bool{}
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("record-%05d-%s", i, bytes.Repeat([]byte{'x'}, i%100))
		want[v] = true
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i % 7)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.TieringPass(ctx)

	adm := kadm.NewClient(newClient(t, b.Addr))
	starts, err := adm.ListStartOffsets(ctx, "tiered")
	if err != nil {
		t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset != 0 {
			t.Errorf("partition %d: earliest %d, want 0 (remote)", o.Partition, o.Offset)
		}
	})
	// Local log start (-4) moved past 0: the data really left the disk.
	localStart := listOffset(t, b.Addr, "tiered", -4)
	tieredEnd := listOffset(t, b.Addr, "tiered", -5)
	for p := int32(0); p < 2; p++ {
		if localStart[p] == 0 || tieredEnd[p] < localStart[p]-1 {
			t.Fatalf("partition %d: local start %d, last tiered %d", p, localStart[p], tieredEnd[p])
		}
	}
	objs, _ := store.List(ctx, "tiered/")
	if len(objs) < 4 {
		t.Fatalf("only %d objects in the store", len(objs))
	}

	recs := testenv.ReadAll(t, b.Addr, "tiered")
	if len(recs) != n {
		t.Fatalf("read %d records back, want %d", len(recs), n)
	}
	for _, r := range recs {
		if !want[string(r.Value)] {
			t.Fatalf("unexpected or duplicate record %q at %d/%d", r.Value, r.Partition, r.Offset)
		}
		delete(want, string(r.Value))
	}
}

// listOffset asks ListOffsets (v9, KIP-1005) for a special timestamp on
// partitions 0 and 1.
func listOffset(t *testing.T, addr, topic string, ts int64) map[int32]int64 {
	t.Helper()
	cl := newClient(t, addr)
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < 2; p++ {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp = p, ts
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("list offsets %d: error %d", ts, p.ErrorCode)
		}
		out[p.Partition] = p.Offset
	}
	return out
}

// TestRestoreTopicFromTheBucketAlone: every disk lost; a broker with an empty
// data dir and the same bucket restores the topic and serves every offset.
func TestRestoreTopicFromTheBucketAlone(t *testing.T) {
	store, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	nowFn := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := testenv.StartBroker(t, broker.Options{Remote: store, Clock: clock.WithNow(nowFn)})
	createTopic(t, a.Addr, "precious", 3, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("8192"),
		"segment.ms":            strp("60000"),
		"retention.ms":          strp("-1"),
	})
	cl := newClient(t, a.Addr, kgo.DefaultProduceTopic("precious"), kgo.ProducerBatchMaxBytes(2048), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := testenv.Context(t, 60*time.Second)
	for i := 0; i < 1500; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprintf("precious-%d", i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	before := testenv.ReadAll(t, a.Addr, "precious")
	// Let segment.ms pass so the active segments seal and everything tiers.
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	a.TieringPass(ctx)
	a.Stop()

	b := testenv.StartBroker(t, broker.Options{Remote: store})
	adm := kadm.NewClient(newClient(t, b.Addr))
	res, err := adm.CreateTopic(ctx, -1, -1, map[string]*string{"strata.remote.restore": strp("true")}, "precious")
	if err != nil || res.Err != nil {
		t.Fatalf("restore: %v %v %s", err, res.Err, res.ErrMessage)
	}
	after := testenv.ReadAll(t, b.Addr, "precious")
	if len(after) != len(before) {
		t.Fatalf("restored %d records, had %d", len(after), len(before))
	}
	key := func(r *kgo.Record) string { return fmt.Sprintf("%d/%d/%s/%s", r.Partition, r.Offset, r.Key, r.Value) }
	had := map[string]bool{}
	for _, r := range before {
		had[key(r)] = true
	}
	for _, r := range after {
		if !had[key(r)] {
			t.Fatalf("restored record %s was not there before", key(r))
		}
	}
	// New records continue after the restored ones.
	cl2 := newClient(t, b.Addr, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	res2 := cl2.ProduceSync(ctx, &kgo.Record{Topic: "precious", Partition: 0, Value: []byte("new")})
	if err := res2.FirstErr(); err != nil {
		t.Fatal(err)
	}
	var last0 int64 = -1
	for _, r := range before {
		if r.Partition == res2[0].Record.Partition && r.Offset > last0 {
			last0 = r.Offset
		}
	}
	if got := res2[0].Record.Offset; got != last0+1 {
		t.Fatalf("new record at offset %d, want %d", got, last0+1)
	}
	// Restoring what the bucket does not hold is a clear error.
	res, _ = adm.CreateTopic(ctx, -1, -1, map[string]*string{"strata.remote.restore": strp("true")}, "never-existed")
	if res.Err == nil || !strings.Contains(res.ErrMessage, "no topic") {
		t.Fatalf("restoring an unknown topic: %v %q", res.Err, res.ErrMessage)
	}
}

// TestDisableTieringKIP950: copy.disable stops copying but keeps the remote
// data readable; turning tiering off needs remote.log.delete.on.disable and
// then deletes the remote data.
func TestDisableTieringKIP950(t *testing.T) {
	store, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.StartBroker(t, broker.Options{Remote: store})
	createTopic(t, b.Addr, "kip950", 2, map[string]*string{"remote.storage.enable": strp("true"), "segment.bytes": strp("4096")})
	ctx := testenv.Context(t, 60*time.Second)
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("kip950"), kgo.ProducerBatchMaxBytes(1024), kgo.ProducerBatchCompression(kgo.NoCompression()))
	produce := func(n int) {
		for i := 0; i < n; i++ {
			cl.Produce(ctx, &kgo.Record{Value: []byte(strings.Repeat("k", 100))}, nil)
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	produce(200)
	b.TieringPass(ctx)
	tiered := listOffset(t, b.Addr, "kip950", -5)
	if tiered[0] < 0 && tiered[1] < 0 {
		t.Fatal("nothing tiered")
	}
	adm := kadm.NewClient(newClient(t, b.Addr))
	set := func(kv ...string) error {
		var ops []kadm.AlterConfig
		for i := 0; i < len(kv); i += 2 {
			ops = append(ops, kadm.AlterConfig{Op: kadm.SetConfig, Name: kv[i], Value: strp(kv[i+1])})
		}
		r, err := adm.AlterTopicConfigs(ctx, ops, "kip950")
		if err != nil {
			return err
		}
		return r[0].Err
	}
	if err := set("remote.log.copy.disable", "true"); err != nil {
		t.Fatal(err)
	}
	produce(200)
	b.TieringPass(ctx)
	if got := listOffset(t, b.Addr, "kip950", -5); got[0] != tiered[0] || got[1] != tiered[1] {
		t.Fatalf("copying went on with remote.log.copy.disable: last tiered %v -> %v", tiered, got)
	}
	if err := set("remote.storage.enable", "false"); err == nil {
		t.Fatal("disabling without remote.log.delete.on.disable was accepted")
	}
	if err := set("remote.storage.enable", "false", "remote.log.delete.on.disable", "true"); err != nil {
		t.Fatal(err)
	}
	if objs, _ := store.List(ctx, "kip950/"); len(objs) != 0 {
		t.Fatalf("%d remote objects left after disabling", len(objs))
	}
	if n := len(testenv.ReadAll(t, b.Addr, "kip950")); n != 400 {
		t.Fatalf("read %d local records after disabling, want 400", n)
	}
}
