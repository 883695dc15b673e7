package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/partition"
)

// testGroupBatch encodes key/value records as an uncompressed RecordBatch
// v2, as the coordinator writes them (built here independently of it).
func testGroupBatch(recs ...group.Record) []byte {
	var body []byte
	for i, r := range recs {
		rec := kmsg.Record{OffsetDelta: int32(i), Key: r.Key, Value: r.Value}
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		body = rec.AppendTo(body)
	}
	rb := kmsg.RecordBatch{Magic: 2, PartitionLeaderEpoch: -1, LastOffsetDelta: int32(len(recs) - 1),
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: body}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// testOffsetsLog opens a standalone __consumer_offsets-like partition in a
// temporary directory, configured as a running broker would configure it.
func testOffsetsLog(t *testing.T) offsetsLog {
	t.Helper()
	b, err := New(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	p, err := partition.Open(partition.Options{Dir: t.TempDir(), Topic: group.OffsetsTopic, Config: b.resolveTopicConfig(group.OffsetsTopicConfigs()).part})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return offsetsLog{p}
}

// TestGroupHostLogRoundTrip: what the adapter appends to a real partition
// log it reads back record by record, batch boundaries and limits kept; a
// closed partition reports group.ErrNotLeader.
func TestGroupHostLogRoundTrip(t *testing.T) {
	l := testOffsetsLog(t)
	ctx := context.Background()
	first := []group.Record{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2"), Value: nil}}
	second := []group.Record{{Key: []byte("k3"), Value: []byte("v3")}}
	for _, b := range [][]byte{testGroupBatch(first...), testGroupBatch(second...)} {
		if _, err := l.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if l.StartOffset() != 0 || l.EndOffset() != 3 {
		t.Fatalf("offsets %d..%d, want 0..3", l.StartOffset(), l.EndOffset())
	}
	var got []group.Record
	next, err := l.Read(ctx, 0, l.EndOffset(), func(r group.Record) {
		got = append(got, group.Record{Key: append([]byte(nil), r.Key...), Value: r.Value})
	})
	if err != nil || next != 3 || len(got) != 3 {
		t.Fatalf("read all: next %d, %d records, %v", next, len(got), err)
	}
	if string(got[0].Key) != "k1" || string(got[0].Value) != "v1" || got[1].Value != nil || string(got[2].Key) != "k3" {
		t.Fatalf("records: %+v", got)
	}
	got = nil
	next, err = l.Read(ctx, 0, 2, func(r group.Record) { got = append(got, r) })
	if err != nil || next != 2 || len(got) != 2 {
		t.Fatalf("read up to 2: next %d, %d records, %v", next, len(got), err)
	}
	if next, err := l.Read(ctx, 3, 3, func(group.Record) { t.Fatal("record past the end") }); next > 3 || err != nil {
		t.Fatalf("read at the end: %d %v", next, err)
	}
	l.p.Close()
	if _, err := l.Append(ctx, testGroupBatch(second...)); !errors.Is(err, group.ErrNotLeader) {
		t.Fatalf("append to a closed partition: %v", err)
	}
}

// FuzzGroupLogBatches feeds garbage to the __consumer_offsets batch walker:
// it may skip batches, never panic.
func FuzzGroupLogBatches(f *testing.F) {
	good := testGroupBatch(group.Record{Key: []byte{0, 1, 0, 1, 'g'}, Value: []byte{0, 3}}, group.Record{Key: []byte("k")})
	f.Add(good)
	f.Add(append(append([]byte(nil), good...), good[:30]...)) // a trailing partial batch
	bad := append([]byte(nil), good...)
	bad[len(bad)-3] ^= 0xff // a record that no longer decodes
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		walkInternalBatches(b, func(r group.Record) { n++ })
		if n > len(b) {
			t.Fatalf("%d records out of %d bytes", n, len(b))
		}
	})
}
