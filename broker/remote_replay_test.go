package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/testenv"
)

// replayValue is record i's value: printable, distinct, of varying length.
func replayValue(i int) string {
	return fmt.Sprintf("replay-%06d-%s", i, strings.Repeat(string(rune('a'+i%26)), 200+i%300))
}

// tieredReplay is a broker whose bucket (MinIO) sits behind an S3-like
// toxiproxy link, with a two-partition topic "replay" wholly copied to the
// bucket and gone from local disk except each active segment.
type tieredReplay struct {
	b        *testenv.InProcess
	produced map[int32][]*kgo.Record // by partition, in offset order
	n        int
}

func startTieredReplay(t *testing.T, records int) *tieredReplay {
	t.Helper()
	mc := testenv.StartMinIO(t)
	mc.CreateBucket(t, "replay")
	proxy := testenv.StartToxiproxy(t, mc.Addr, testenv.S3Like)
	store, err := remotestore.NewS3(remotestore.S3Options{Bucket: "replay", Endpoint: proxy.Endpoint, Region: mc.Region, PathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(mc.AccessKey, mc.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.StartBroker(t, broker.Options{Remote: store, Settings: map[string]string{"remote.fetch.chunk.bytes": "65536"}})
	createTopic(t, b.Addr, "replay", 2, map[string]*string{
		"remote.storage.enable": strp("true"),
		"segment.bytes":         strp("262144"),
		"local.retention.bytes": strp("1"),
	})
	tr := &tieredReplay{b: b, produced: map[int32][]*kgo.Record{}, n: records}
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("replay"), kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(16384), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	ctx := testenv.Context(t, 120*time.Second)
	for i := range records {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(replayValue(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	// Read back what was acknowledged, in offset order, from the local log
	// before it goes: the reference the replays are checked against.
	for _, r := range testenv.ReadAll(t, b.Addr, "replay") {
		tr.produced[r.Partition] = append(tr.produced[r.Partition], r)
	}
	if got := len(tr.produced[0]) + len(tr.produced[1]); got != records {
		t.Fatalf("%d records in the log, produced %d", got, records)
	}
	b.TieringPass(ctx)
	local := listOffset(t, b.Addr, "replay", -4)
	for p := int32(0); p < 2; p++ {
		if local[p] < int64(len(tr.produced[p]))/2 {
			t.Fatalf("partition %d: local log starts at %d of %d: too little left the disk", p, local[p], len(tr.produced[p]))
		}
	}
	return tr
}

// check compares consumed records with what was produced, byte for byte.
func (tr *tieredReplay) check(t *testing.T, who string, got map[int32][]*kgo.Record) {
	t.Helper()
	for p, want := range tr.produced {
		if len(got[p]) != len(want) {
			t.Fatalf("%s: partition %d: %d records, want %d", who, p, len(got[p]), len(want))
		}
		for i, w := range want {
			g := got[p][i]
			if g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) {
				t.Fatalf("%s: partition %d record %d: offset %d key %q, want offset %d key %q (or the value differs)", who, p, i, g.Offset, g.Key, w.Offset, w.Key)
			}
		}
	}
}

// TestReplayThroughLatencyProxy: with the bucket 30 ms ± 10 ms and 80 MB/s
// per connection away, a replay from offset 0 — almost all of it from the
// bucket, across chunks and segments — reads every record byte for byte,
// with franz-go and with kcat (librdkafka).
func TestReplayThroughLatencyProxy(t *testing.T) {
	tr := startTieredReplay(t, 6000)
	ctx := testenv.Context(t, 120*time.Second)

	// franz-go, small fetches so one replay is many remote reads.
	cl := newClient(t, tr.b.Addr, kgo.ConsumeTopics("replay"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(100<<10))
	got := map[int32][]*kgo.Record{}
	for n := 0; n < tr.n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], r); n++ })
	}
	tr.check(t, "kgo", got)
	if st := tr.b.Broker.RemoteReaderStats(); st.CacheBytes == 0 && st.MaxHeldBytes == 0 {
		t.Fatalf("no remote reads happened: %+v", st)
	}

	// kcat: partition, offset, key, value per line, to the end.
	kcat := exec.CommandContext(ctx, testenv.Kcat(t), "-b", tr.b.Addr, "-C", "-t", "replay", "-o", "beginning", "-e", "-q",
		"-f", "%p %o %k %s\n", "-X", "fetch.max.bytes=1048576")
	kcat.Stderr = os.Stderr
	out, err := kcat.Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	got = map[int32][]*kgo.Record{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var p int32
		var off int64
		var key, val string
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %s %s", &p, &off, &key, &val); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		got[p] = append(got[p], &kgo.Record{Partition: p, Offset: off, Key: []byte(key), Value: []byte(val)})
	}
	tr.check(t, "kcat", got)
	// Both replays went through Fetch responses that release their chunk
	// buffers once written: none was released more often than held.
	if st := tr.b.Broker.RemoteReaderStats(); st.BuffersOverReleased != 0 || st.BuffersAllocated == 0 {
		t.Fatalf("chunk buffers: %+v", st)
	}
}

// TestConsumerStopMidReplayLeavesNoPrefetch: a consumer that goes halfway
// through a replay leaves the broker with no remote stream, no GET in flight
// and no memory held for it.
func TestConsumerStopMidReplayLeavesNoPrefetch(t *testing.T) {
	tr := startTieredReplay(t, 6000)
	ctx := testenv.Context(t, 120*time.Second)
	cl := newClient(t, tr.b.Addr, kgo.ConsumeTopics("replay"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(64<<10))
	for n := 0; n < tr.n/4; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		n += fs.NumRecords()
	}
	if st := tr.b.Broker.RemoteReaderStats(); st.Streams == 0 || st.HeldBytes == 0 {
		t.Fatalf("mid-replay the broker reads nothing ahead: %+v", st)
	}
	cl.Close()
	if err := tr.b.Broker.WaitRemoteReadersIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := tr.b.Broker.RemoteReaderStats(); st.Streams != 0 || st.InflightGets != 0 || st.HeldBytes != 0 {
		t.Fatalf("after the consumer went: %+v", st)
	}
}

// TestCorruptRemoteChunkIsAnErrorToTheClient: a flipped byte in a remote
// segment makes a Fetch at that segment answer KAFKA_STORAGE_ERROR with no
// record bytes, every time — never the corrupt data.
func TestCorruptRemoteChunkIsAnErrorToTheClient(t *testing.T) {
	dir := t.TempDir()
	store, err := remotestore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := testenv.StartBroker(t, broker.Options{Remote: store, Settings: map[string]string{"remote.fetch.chunk.bytes": "65536"}})
	createTopic(t, b.Addr, "corrupt", 1, map[string]*string{
		"remote.storage.enable": strp("true"), "segment.bytes": strp("262144"), "local.retention.bytes": strp("1"),
	})
	ctx := testenv.Context(t, 60*time.Second)
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("corrupt"), kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerBatchMaxBytes(16384))
	for i := range 3000 {
		cl.Produce(ctx, &kgo.Record{Value: []byte(replayValue(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.TieringPass(ctx)
	objs, err := store.List(ctx, "corrupt/0/")
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".log") {
			first = o.Key // sorted: the lowest base offset
			break
		}
	}
	path := dir + "/" + first
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[70_000] ^= 0xff // inside chunk 1, in some batch's records
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	topics, err := kadm.NewClient(cl).ListTopics(ctx, "corrupt")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(offset int64) kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 5000, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "corrupt", topics["corrupt"].ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = offset, 1<<20, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].Partitions[0]
	}
	// Read from 0 until the bad batch: good bytes first, then the error.
	off, good := int64(0), 0
	for {
		p := fetch(off)
		if p.ErrorCode != 0 {
			if p.ErrorCode != kerr.KafkaStorageError.Code || len(p.RecordBatches) != 0 {
				t.Fatalf("at %d: error %d with %d record bytes", off, p.ErrorCode, len(p.RecordBatches))
			}
			break
		}
		if len(p.RecordBatches) == 0 {
			t.Fatalf("at %d: no records and no error", off)
		}
		good += len(p.RecordBatches)
		if good > len(raw) {
			t.Fatal("read past the corrupt segment without an error")
		}
		off = lastOffsetOf(t, p.RecordBatches) + 1
	}
	if good > 70_000 {
		t.Fatalf("served %d good bytes, past the corrupt byte at 70000", good)
	}
	for range 2 { // and again: a corrupt chunk never becomes data
		if p := fetch(off); p.ErrorCode != kerr.KafkaStorageError.Code || len(p.RecordBatches) != 0 {
			t.Fatalf("retry at %d: error %d with %d record bytes", off, p.ErrorCode, len(p.RecordBatches))
		}
	}
}

func lastOffsetOf(t *testing.T, b []byte) int64 {
	t.Helper()
	last := int64(-1)
	for len(b) >= 61 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		last = rb.FirstOffset + int64(rb.LastOffsetDelta)
		b = b[12+int(rb.Length):]
	}
	return last
}

// gatedGets holds GETs of .log objects under prefix until opened.
type gatedGets struct {
	remotestore.Storage
	prefix string
	open   chan struct{}
}

func (g *gatedGets) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, g.prefix) && strings.HasSuffix(key, ".log") {
		select {
		case <-g.open:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Storage.Get(ctx, key, off, n)
}

// TestFetchAnswersWithTheRemoteReadsThatArrived: a Fetch naming two remote
// partitions, one of whose GETs cannot complete, answers with the other's
// records (within max_wait_ms, not after it: max_wait here is longer than
// the test's own deadline) and an empty, error-free set for the slow one,
// which comes with a later fetch once the bucket answers.
func TestFetchAnswersWithTheRemoteReadsThatArrived(t *testing.T) {
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedGets{Storage: local, prefix: "gated/1/", open: make(chan struct{})}
	b := testenv.StartBroker(t, broker.Options{Remote: g, Settings: map[string]string{"remote.fetch.chunk.bytes": "65536"}})
	createTopic(t, b.Addr, "gated", 2, map[string]*string{
		"remote.storage.enable": strp("true"), "segment.bytes": strp("65536"), "local.retention.bytes": strp("1"),
	})
	ctx := testenv.Context(t, 60*time.Second)
	cl := newClient(t, b.Addr, kgo.DefaultProduceTopic("gated"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerBatchMaxBytes(8192), kgo.ProducerBatchCompression(kgo.NoCompression()))
	for i := range 2000 {
		cl.Produce(ctx, &kgo.Record{Value: []byte(replayValue(i))}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.TieringPass(ctx)
	if ls := listOffset(t, b.Addr, "gated", -4); ls[0] == 0 || ls[1] == 0 {
		t.Fatalf("local log starts %v: nothing left the disk", ls)
	}
	topics, err := kadm.NewClient(cl).ListTopics(ctx, "gated")
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(parts ...int32) map[int32]kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 120_000, 1, 1<<20
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "gated", topics["gated"].ID
		for _, p := range parts {
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p, 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int32]kmsg.FetchResponseTopicPartition{}
		for _, p := range resp.Topics[0].Partitions {
			out[p.Partition] = p
		}
		return out
	}
	got := fetch(0, 1)
	if p := got[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("partition 0: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	if p := got[1]; p.ErrorCode != 0 || len(p.RecordBatches) != 0 {
		t.Fatalf("partition 1 (bucket not answering): error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
	close(g.open)
	if p := fetch(1)[1]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("partition 1 after the bucket answered: error %d, %d bytes", p.ErrorCode, len(p.RecordBatches))
	}
}
