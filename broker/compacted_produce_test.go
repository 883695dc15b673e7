package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker"
	"github.com/strata-broker/strata/testenv"
)

// produceRawV is produceRaw at a chosen Produce version.
func produceRawV(t *testing.T, c *rawConn, version int16, topic string, partition int32, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	body := c.request(req, version)
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(version)
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	return resp.Topics[0].Partitions[0]
}

// A compacted topic refuses records without a key as Kafka's LogValidator
// does: the batch that holds one is refused whole with INVALID_RECORD, each
// keyless record named in RecordErrors (KIP-467, Produce v8+), and nothing
// of it is stored; keyed batches around it are stored as usual.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	b := testenv.StartBroker(t, broker.Options{})
	compact := "compact,delete"
	createTopic(t, b.Addr, "cmp", 1, map[string]*string{"cleanup.policy": &compact})
	ctx := testenv.Context(t, 60*time.Second)

	// franz-go, lz4-compressed batches (the check runs on the decompressed
	// records). ManualFlushing makes each Flush one batch per partition.
	cl := newClient(t, b.Addr, kgo.ManualFlushing(), kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordRetries(3), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	flushBatch := func(recs ...*kgo.Record) []error {
		errs := make([]error, len(recs))
		var wg sync.WaitGroup
		for i, r := range recs {
			wg.Add(1)
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) { errs[i] = err; wg.Done() })
		}
		if err := cl.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		return errs
	}
	rec := func(key, value string) *kgo.Record {
		r := &kgo.Record{Topic: "cmp", Value: []byte(value)}
		if key != "" {
			r.Key = []byte(key)
		}
		return r
	}
	for i, err := range flushBatch(rec("k1", "first"), rec("k2", "second")) {
		if err != nil {
			t.Fatalf("keyed batch, record %d: %v", i, err)
		}
	}
	errs := flushBatch(rec("k3", "mixed-0"), rec("", "mixed-1"), rec("k4", "mixed-2"), rec("", "mixed-3"))
	for i, err := range errs {
		if !errors.Is(err, kerr.InvalidRecord) {
			t.Fatalf("mixed batch, record %d: %v, want INVALID_RECORD for the whole batch", i, err)
		}
	}
	for i, err := range flushBatch(rec("k5", "third")) {
		if err != nil {
			t.Fatalf("keyed batch after the refused one, record %d: %v", i, err)
		}
	}

	// The wire answer, by version: v8+ names the records, v7 has only the
	// code.
	c := dialRaw(t, b.Addr)
	mixed := makeBatch(batchSpec{timestamp: time.Now().UnixMilli(),
		values: [][]byte{[]byte("raw-0"), []byte("raw-1"), []byte("raw-2"), []byte("raw-3"), []byte("raw-4")},
		keys:   [][]byte{[]byte("r0"), nil, []byte("r2"), nil, nil}})
	for _, v := range []int16{8, 9, 11} {
		p := produceRawV(t, c, v, "cmp", 0, mixed)
		if p.ErrorCode != kerr.InvalidRecord.Code || p.BaseOffset != -1 {
			t.Fatalf("v%d: %v at %d", v, kerr.ErrorForCode(p.ErrorCode), p.BaseOffset)
		}
		var idx []int32
		for _, e := range p.ErrorRecords {
			idx = append(idx, e.RelativeOffset)
			if e.ErrorMessage == nil || !strings.Contains(*e.ErrorMessage, "without a key") {
				t.Fatalf("v%d: record error %d message %v", v, e.RelativeOffset, e.ErrorMessage)
			}
		}
		if fmt.Sprint(idx) != "[1 3 4]" {
			t.Fatalf("v%d: record errors at %v, want [1 3 4]", v, idx)
		}
		if p.ErrorMessage == nil || !strings.Contains(*p.ErrorMessage, "3 of 5 records") {
			t.Fatalf("v%d: partition error message %v", v, p.ErrorMessage)
		}
	}
	if p := produceRawV(t, c, 7, "cmp", 0, mixed); p.ErrorCode != kerr.InvalidRecord.Code || len(p.ErrorRecords) != 0 {
		t.Fatalf("v7: %v with %d record errors", kerr.ErrorForCode(p.ErrorCode), len(p.ErrorRecords))
	}

	// Only the keyed batches are in the log, at consecutive offsets.
	got := consumeAll(t, b.Addr, "cmp", 3)
	want := []string{"k1=first@0", "k2=second@1", "k5=third@2"}
	for i, r := range got {
		if s := fmt.Sprintf("%s=%s@%d", r.Key, r.Value, r.Offset); i >= len(want) || s != want[i] {
			t.Fatalf("record %d is %s, want %v", i, s, want)
		}
	}
	if end := endOffset(t, cl, "cmp", 0); end != 3 {
		t.Fatalf("log end offset %d, want 3: a refused batch reached the log", end)
	}
}

// endOffset asks ListOffsets for a partition's latest offset.
func endOffset(t *testing.T, cl *kgo.Client, topic string, partition int32) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("list offsets: %v", err)
	}
	return resp.Topics[0].Partitions[0].Offset
}
