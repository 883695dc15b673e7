package localstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// batchSpec describes a hand-built uncompressed RecordBatch v2.
type batchSpec struct {
	records    int
	baseTs     int64 // first record's timestamp; record i has baseTs+i
	valueSize  int
	producerID int64 // -1 for none
	epoch      int16
	baseSeq    int32
}

func plain(records int, ts int64) batchSpec {
	return batchSpec{records: records, baseTs: ts, valueSize: 10, producerID: -1, baseSeq: -1}
}

// buildBatch encodes s as Kafka would: records with zig-zag varints, a
// CRC-32C over attributes..end. baseOffset is 0, as a producer sends it.
func buildBatch(s batchSpec) []byte {
	var recs []byte
	for i := 0; i < s.records; i++ {
		var r []byte
		r = append(r, 0)                     // attributes
		r = binary.AppendVarint(r, int64(i)) // timestamp delta
		r = binary.AppendVarint(r, int64(i)) // offset delta
		r = binary.AppendVarint(r, -1)       // null key
		r = binary.AppendVarint(r, int64(s.valueSize))
		r = append(r, bytes.Repeat([]byte{byte('a' + i%26)}, s.valueSize)...)
		r = binary.AppendVarint(r, 0) // headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := make([]byte, BatchHeaderSize, BatchHeaderSize+len(recs))
	binary.BigEndian.PutUint32(b[offLength:], uint32(BatchHeaderSize-12+len(recs)))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], 0xffffffff)
	b[offMagic] = 2
	binary.BigEndian.PutUint32(b[offLastOffsetDelta:], uint32(s.records-1))
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(s.baseTs))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(s.baseTs+int64(s.records-1)))
	binary.BigEndian.PutUint64(b[offProducerID:], uint64(s.producerID))
	binary.BigEndian.PutUint16(b[offProducerEpoch:], uint16(s.epoch))
	binary.BigEndian.PutUint32(b[offBaseSequence:], uint32(s.baseSeq))
	binary.BigEndian.PutUint32(b[offNumRecords:], uint32(s.records))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

// fakeClock is the injectable clock for roll and flush timing.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func testConfig(clock *fakeClock) Config {
	return Config{
		SegmentBytes:       1 << 20,
		IndexIntervalBytes: 100,
		Now:                clock.Now,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func openTestLog(t *testing.T, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func mustAppend(t *testing.T, l *Log, s batchSpec, epoch int32) AppendInfo {
	t.Helper()
	info, err := l.Append(buildBatch(s), epoch, false)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return info
}

// readAll reads batches from offset to the end, following segments, and
// returns their headers after checking each CRC.
func readAll(t *testing.T, l *Log, offset int64) []BatchHeader {
	t.Helper()
	var out []BatchHeader
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
			out = append(out, h)
			offset = h.LastOffset() + 1
		}
	}
	return out
}

// checkContiguous asserts the headers cover [from, to) with no gaps.
func checkContiguous(t *testing.T, hs []BatchHeader, from, to int64) {
	t.Helper()
	next := from
	for _, h := range hs {
		if h.BaseOffset != next {
			t.Fatalf("batch base %d, want %d", h.BaseOffset, next)
		}
		next = h.LastOffset() + 1
	}
	if next != to {
		t.Fatalf("batches end at %d, want %d", next, to)
	}
}
