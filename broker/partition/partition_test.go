package partition

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
)

// batch builds an uncompressed v2 batch of n records with timestamps
// ts, ts+1, …, as a producer sends it (base offset 0).
func batch(n int, ts int64, pid int64, epoch int16, seq int32) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		r := kmsg.NewRecord()
		r.TimestampDelta64 = int64(i)
		r.OffsetDelta = int32(i)
		r.Value = []byte("value")
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	kb := kmsg.NewRecordBatch()
	kb.Magic = 2
	kb.PartitionLeaderEpoch = -1
	kb.LastOffsetDelta = int32(n - 1)
	kb.FirstTimestamp, kb.MaxTimestamp = ts, ts+int64(n-1)
	kb.ProducerID, kb.ProducerEpoch, kb.FirstSequence = pid, epoch, seq
	kb.NumRecords = int32(n)
	kb.Records = recs
	kb.Length = int32(localstore.BatchHeaderSize - 12 + len(recs))
	b := kb.AppendTo(nil)
	localstore.SetCRC(b)
	return b
}

func openTest(t *testing.T, clk clock.Clock) *Partition {
	t.Helper()
	cfg := &Config{MaxMessageBytes: 1 << 20, TimestampBeforeMax: 1<<63 - 1, TimestampAfterMax: 3600_000, MinInsyncReplicas: 1,
		Store: localstore.Config{Now: clk.Now}}
	p, err := Open(Options{Dir: t.TempDir(), Topic: "t", Index: 0, Config: cfg, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestProduceRejectsBadInputWithKafkaCodes(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	good := batch(3, now.UnixMilli(), -1, 0, -1)
	badCRC := append([]byte(nil), good...)
	badCRC[len(badCRC)-1] ^= 0xff
	future := batch(1, now.Add(2*time.Hour).UnixMilli(), -1, 0, -1)
	lying := batch(3, now.UnixMilli(), -1, 0, -1)
	lying[57+3] = 4 // NumRecords says 4, three are there
	localstore.SetCRC(lying)
	for _, tc := range []struct {
		name    string
		records []byte
		acks    int16
		want    *kerr.Error
	}{
		{"not a batch", []byte{1, 2, 3}, 1, kerr.CorruptMessage},
		{"bad crc", badCRC, 1, kerr.CorruptMessage},
		{"two batches", append(append([]byte(nil), good...), good...), 1, kerr.InvalidRecord},
		{"count mismatch", lying, 1, kerr.InvalidRecord},
		{"future timestamp", future, 1, kerr.InvalidTimestamp},
	} {
		res := p.Produce(ctx, tc.records, tc.acks, nil)
		if res.Err != tc.want {
			t.Errorf("%s: got %v (%s), want %v", tc.name, res.Err, res.Msg, tc.want)
		}
		if res.Msg == "" {
			t.Errorf("%s: no error message", tc.name)
		}
	}
	if p.LogEndOffset() != 0 {
		t.Fatalf("rejected batches reached the log: end %d", p.LogEndOffset())
	}
	p.cfg.Load().MinInsyncReplicas = 2
	if res := p.Produce(ctx, good, -1, nil); res.Err != kerr.NotEnoughReplicas {
		t.Fatalf("acks=all with ISR 1 < min.insync 2: %v", res.Err)
	}
	if res := p.Produce(ctx, good, 1, nil); res.Err != nil || res.BaseOffset != 0 {
		t.Fatalf("acks=1 is not bound by min.insync.replicas: %+v", res)
	}
}

func TestIdempotentRetryGetsItsOriginalOffset(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	first := p.Produce(ctx, batch(2, now.UnixMilli(), 7, 0, 0), -1, nil)
	second := p.Produce(ctx, batch(2, now.UnixMilli(), 7, 0, 2), -1, nil)
	if first.Err != nil || second.Err != nil || second.BaseOffset != 2 {
		t.Fatalf("appends: %+v %+v", first, second)
	}
	retry := p.Produce(ctx, batch(2, now.UnixMilli(), 7, 0, 0), -1, nil)
	if retry.Err != nil || !retry.Duplicate || retry.BaseOffset != 0 {
		t.Fatalf("retry of the first batch: %+v", retry)
	}
	if gap := p.Produce(ctx, batch(1, now.UnixMilli(), 7, 0, 9), -1, nil); gap.Err != kerr.OutOfOrderSequenceNumber {
		t.Fatalf("sequence gap: %v", gap.Err)
	}
	if zombie := p.Produce(ctx, batch(1, now.UnixMilli(), 7, -1, 4), -1, nil); zombie.Err == nil {
		t.Fatal("an older producer epoch was accepted")
	}
	if p.LogEndOffset() != 4 {
		t.Fatalf("log end %d, want 4 (retries and rejections append nothing)", p.LogEndOffset())
	}
}

func TestListOffsetByTimestampFindsTheRecord(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	base := now.UnixMilli() - 10_000
	if res := p.Produce(ctx, batch(5, base, -1, 0, -1), 1, nil); res.Err != nil {
		t.Fatal(res.Msg)
	}
	if res := p.Produce(ctx, batch(5, base+100, -1, 0, -1), 1, nil); res.Err != nil {
		t.Fatal(res.Msg)
	}
	for _, tc := range []struct {
		ts, wantOff int64
	}{
		{base, 0}, {base + 3, 3}, {base + 4, 4}, {base + 5, 5}, {base + 102, 7}, {base + 1000, -1},
		{LatestTimestamp, 10}, {EarliestTimestamp, 0}, {EarliestLocalTimestamp, 0}, {LatestTieredTimestamp, -1},
	} {
		off, _, err := p.ListOffset(ctx, tc.ts)
		if err != nil || off != tc.wantOff {
			t.Errorf("ListOffset(%d) = %d, %v; want %d", tc.ts, off, err, tc.wantOff)
		}
	}
	if _, _, err := p.ListOffset(ctx, -9); err != ErrBadTimestamp {
		t.Fatalf("unknown special timestamp: %v", err)
	}
	off, ts, err := p.ListOffset(ctx, MaxTimestampTimestamp)
	if err != nil || off != 9 || ts != base+104 {
		t.Fatalf("max timestamp: %d %d %v", off, ts, err)
	}
}

func TestWaitersWakeOnAppend(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	w := NewWaiter()
	p.AddWaiter(w)
	defer p.RemoveWaiter(w)
	if res := p.Produce(context.Background(), batch(1, now.UnixMilli(), -1, 0, -1), 1, nil); res.Err != nil {
		t.Fatal(res.Msg)
	}
	select {
	case <-w.C:
	case <-time.After(10 * time.Second):
		t.Fatal("append did not wake the waiter")
	}
}
