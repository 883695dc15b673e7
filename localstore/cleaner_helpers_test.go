package localstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kv is one record to build; a nil value is a tombstone, a nil key a
// keyless record.
type kv struct{ key, value []byte }

func rec(k, v string) kv { return kv{[]byte(k), []byte(v)} }
func tomb(k string) kv   { return kv{key: []byte(k)} }

// keyedSpec describes a batch of keyed records, compressed by franz-go's own
// compressor so the cleaner's decoder is checked against an independent
// encoder.
type keyedSpec struct {
	recs          []kv
	ts            int64 // record i has ts+i
	codec         *kgo.CompressionCodec
	producerID    int64 // -1 for none
	epoch         int16
	baseSeq       int32
	transactional bool
}

func keyed(ts int64, recs ...kv) keyedSpec {
	return keyedSpec{recs: recs, ts: ts, producerID: -1, baseSeq: -1}
}

func buildKeyedBatch(t testing.TB, s keyedSpec) []byte {
	t.Helper()
	var raw []byte
	for i, r := range s.recs {
		kr := kmsg.Record{TimestampDelta64: int64(i), OffsetDelta: int32(i), Key: r.key, Value: r.value}
		body := kr.AppendTo(nil)[1:] // drop the placeholder zero length
		kr.Length = int32(len(body))
		raw = kr.AppendTo(raw)
	}
	records, attrs := raw, int16(0)
	if s.codec != nil {
		c := testCompressor(t, *s.codec)
		out, codec := c.Compress(new(bytes.Buffer), raw)
		records, attrs = append([]byte(nil), out...), int16(codec)
	}
	if s.transactional {
		attrs |= attrTransactional
	}
	n := len(s.recs)
	kb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs, LastOffsetDelta: int32(n - 1),
		FirstTimestamp: s.ts, MaxTimestamp: s.ts + int64(n-1),
		ProducerID: s.producerID, ProducerEpoch: s.epoch, FirstSequence: s.baseSeq,
		NumRecords: int32(n), Records: records, Length: int32(BatchHeaderSize - batchLengthOverhead + len(records)),
	}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

func appendKeyed(t testing.TB, l *Log, s keyedSpec) AppendInfo {
	t.Helper()
	info, err := l.Append(buildKeyedBatch(t, s), 0, false)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return info
}

// readRec is one record read back from the log.
type readRec struct {
	offset int64
	key    string
	value  []byte // nil for a tombstone
	batch  BatchHeader
}

var (
	testDecompressor = kgo.DefaultDecompressor()
	testCompressors  sync.Map // kgo.CompressionCodec → kgo.Compressor
)

// testCompressor returns one shared compressor per codec: its pooled
// buffers keep the tests fast under -race.
func testCompressor(t testing.TB, codec kgo.CompressionCodec) kgo.Compressor {
	if c, ok := testCompressors.Load(codec); ok {
		return c.(kgo.Compressor)
	}
	c, err := kgo.DefaultCompressor(codec)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := testCompressors.LoadOrStore(codec, c)
	return c2.(kgo.Compressor)
}

// readKeyed reads every batch from the log start, decoding records with
// franz-go (not the cleaner's decoder), and checks what a consumer relies
// on: valid CRCs, batch and record offsets strictly increasing, record
// offsets inside their batch.
func readKeyed(t testing.TB, l *Log) []readRec {
	t.Helper()
	var out []readRec
	prev := int64(-1)
	offset := l.LogStartOffset()
	for offset < l.LogEndOffset() {
		b, err := l.ReadBytes(offset, 1<<20, l.LogEndOffset())
		if err != nil {
			t.Fatalf("ReadBytes(%d): %v", offset, err)
		}
		if len(b) == 0 {
			t.Fatalf("ReadBytes(%d): empty before end %d", offset, l.LogEndOffset())
		}
		batches, err := SplitBatches(b)
		if err != nil {
			t.Fatalf("SplitBatches: %v", err)
		}
		for _, bb := range batches {
			h, err := ValidateBatch(bb)
			if err != nil {
				t.Fatalf("ValidateBatch: %v", err)
			}
			if h.BaseOffset < offset && h.LastOffset() < offset {
				t.Fatalf("batch [%d, %d] returned for offset %d", h.BaseOffset, h.LastOffset(), offset)
			}
			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(bb); err != nil {
				t.Fatal(err)
			}
			data, err := testDecompressor.Decompress(kb.Records, kgo.CompressionCodecType(h.Compression()))
			if err != nil {
				t.Fatalf("decompress batch at %d: %v", h.BaseOffset, err)
			}
			for i := int32(0); i < kb.NumRecords; i++ {
				var r kmsg.Record
				if err := r.ReadFrom(data); err != nil {
					t.Fatalf("record %d of batch at %d: %v", i, h.BaseOffset, err)
				}
				n, ln := binary.Varint(data)
				data = data[ln+int(n):]
				off := h.BaseOffset + int64(r.OffsetDelta)
				if off <= prev || off > h.LastOffset() {
					t.Fatalf("record offset %d after %d (batch [%d, %d])", off, prev, h.BaseOffset, h.LastOffset())
				}
				prev = off
				out = append(out, readRec{offset: off, key: string(r.Key), value: r.Value, batch: h})
			}
			if len(data) != 0 {
				t.Fatalf("batch at %d: %d trailing bytes", h.BaseOffset, len(data))
			}
			offset = h.LastOffset() + 1
		}
	}
	return out
}

// latestByKey is what compaction must preserve: each key's last value
// (nil after a tombstone).
func latestByKey(recs []readRec) map[string][]byte {
	m := map[string][]byte{}
	for _, r := range recs {
		m[r.key] = r.value
	}
	return m
}

func checkSameLatest(t testing.TB, before, after []readRec) {
	t.Helper()
	want, got := latestByKey(before), latestByKey(after)
	for k, v := range want {
		g, ok := got[k]
		if v == nil {
			// A tombstone may be gone, but no older value may reappear.
			if ok && g != nil {
				t.Fatalf("key %q: deleted, but reads %q", k, g)
			}
			continue
		}
		if !ok || !bytes.Equal(g, v) {
			t.Fatalf("key %q: latest value %q, want %q", k, g, v)
		}
	}
	// Everything read back was written at that offset.
	byOffset := map[int64]readRec{}
	for _, r := range before {
		byOffset[r.offset] = r
	}
	for _, r := range after {
		w, ok := byOffset[r.offset]
		if !ok || w.key != r.key || !bytes.Equal(w.value, r.value) || (w.value == nil) != (r.value == nil) {
			t.Fatalf("offset %d reads %q=%q, was written as %q=%q", r.offset, r.key, r.value, w.key, w.value)
		}
	}
}

func val(i int) string { return fmt.Sprintf("value-%06d", i) }
