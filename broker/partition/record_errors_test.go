package partition

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
)

// keyedBatch builds an uncompressed v2 batch with one record per key (nil =
// a null key), record i at timestamp ts+deltas[i] (0 when deltas is short).
func keyedBatch(keys [][]byte, ts int64, deltas ...int64) []byte {
	var recs []byte
	maxTs := ts
	for i, k := range keys {
		r := kmsg.NewRecord()
		if i < len(deltas) {
			r.TimestampDelta64 = deltas[i]
		}
		maxTs = max(maxTs, ts+r.TimestampDelta64)
		r.OffsetDelta = int32(i)
		r.Key = k
		r.Value = []byte("value")
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	kb := kmsg.NewRecordBatch()
	kb.Magic = 2
	kb.PartitionLeaderEpoch = -1
	kb.LastOffsetDelta = int32(len(keys) - 1)
	kb.FirstTimestamp, kb.MaxTimestamp = ts, maxTs
	kb.ProducerID, kb.ProducerEpoch, kb.FirstSequence = -1, -1, -1
	kb.NumRecords = int32(len(keys))
	kb.Records = recs
	kb.Length = int32(localstore.BatchHeaderSize - 12 + len(recs))
	b := kb.AppendTo(nil)
	localstore.SetCRC(b)
	return b
}

func indexes(errs []RecordError) []int32 {
	var out []int32
	for _, e := range errs {
		out = append(out, e.Index)
	}
	return out
}

func sameIndexes(a []int32, b ...int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Kafka's LogValidator.validateKey: on a compacted topic a record without a
// key refuses its whole batch with INVALID_RECORD, each such record named by
// its index; an empty key is a key.
func TestProduceCompactedRefusesKeylessRecords(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	p.cfg.Load().Compacted = true
	ctx := context.Background()

	if res := p.Produce(ctx, keyedBatch([][]byte{[]byte("a"), {}, []byte("b")}, now.UnixMilli()), 1, nil); res.Err != nil {
		t.Fatalf("keyed batch (one empty key) refused: %v %s", res.Err, res.Msg)
	}
	mixed := keyedBatch([][]byte{[]byte("c"), nil, []byte("d"), nil, nil}, now.UnixMilli())
	res := p.Produce(ctx, mixed, 1, nil)
	if res.Err != kerr.InvalidRecord {
		t.Fatalf("mixed batch: %v (%s), want INVALID_RECORD", res.Err, res.Msg)
	}
	if got := indexes(res.RecordErrors); !sameIndexes(got, 1, 3, 4) {
		t.Fatalf("record errors at %v, want [1 3 4]", got)
	}
	for _, re := range res.RecordErrors {
		if !strings.Contains(re.Message, "without a key") || !strings.Contains(re.Message, "t-0") {
			t.Fatalf("record error message %q", re.Message)
		}
	}
	if !strings.Contains(res.Msg, "3 of 5 records") || res.BaseOffset != -1 {
		t.Fatalf("partition message %q, base offset %d", res.Msg, res.BaseOffset)
	}
	if p.LogEndOffset() != 3 {
		t.Fatalf("log end %d, want 3: nothing of the refused batch may be appended", p.LogEndOffset())
	}

	// The same records on a topic that is not compacted are fine.
	p.cfg.Load().Compacted = false
	if res := p.Produce(ctx, mixed, 1, nil); res.Err != nil || res.BaseOffset != 3 {
		t.Fatalf("keyless records on a delete topic: %+v", res)
	}
}

// Kafka's validateTimestamp runs per record too: only the records out of
// range are named, the error is INVALID_TIMESTAMP, and a keyless record's
// key error comes first for that record.
func TestProduceNamesRecordsWithBadTimestamps(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	hour := int64(time.Hour / time.Millisecond)
	b := keyedBatch([][]byte{[]byte("a"), []byte("b"), []byte("c")}, now.UnixMilli(), 0, 2*hour, 0)
	res := p.Produce(ctx, b, 1, nil)
	if res.Err != kerr.InvalidTimestamp || !sameIndexes(indexes(res.RecordErrors), 1) {
		t.Fatalf("future record: %v %v (%s)", res.Err, indexes(res.RecordErrors), res.Msg)
	}
	p.cfg.Load().Compacted = true
	b = keyedBatch([][]byte{nil, []byte("b"), nil}, now.UnixMilli(), 0, 2*hour, 2*hour)
	res = p.Produce(ctx, b, 1, nil)
	if res.Err != kerr.InvalidTimestamp || !sameIndexes(indexes(res.RecordErrors), 0, 1, 2) {
		t.Fatalf("keyless and future records: %v %v", res.Err, indexes(res.RecordErrors))
	}
	if !strings.Contains(res.RecordErrors[2].Message, "without a key") || !strings.Contains(res.RecordErrors[1].Message, "after.max.ms") {
		t.Fatalf("messages: %+v", res.RecordErrors)
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("log end %d, want 0", p.LogEndOffset())
	}
}
