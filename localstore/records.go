package localstore

// The one record walker: every place that reads the records of a v2 batch —
// produce validation, the log cleaner, the group coordinator's replay of
// __consumer_offsets, dump-log — walks them here, on the uncompressed
// records section, without allocating per record.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"
)

// ErrBadRecords marks a records section that does not hold what its batch
// header claims (Kafka answers CORRUPT_MESSAGE / INVALID_RECORD). It wraps
// ErrCorruption, so errors.Is(err, ErrCorruption) holds too.
var ErrBadRecords = fmt.Errorf("%w: invalid records", ErrCorruption)

// Record is one record of a v2 batch, decoded in place: Raw, Key, Value and
// the headers alias the walked bytes and are valid only as long as they are.
type Record struct {
	// Raw is the whole record, its length prefix included: the cleaner
	// copies it unchanged into rewritten batches.
	Raw            []byte
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil for a null key
	Value          []byte // nil for a null value (a tombstone)
	NumHeaders     int32
	headers        []byte
}

// EachHeader calls fn with every header's key and value (nil for a null
// value), in order.
func (r Record) EachHeader(fn func(key, value []byte)) {
	rd := kbin.Reader{Src: r.headers}
	for i := int32(0); i < r.NumHeaders; i++ {
		k := rd.Span(int(rd.Varint()))
		var v []byte
		if vl := rd.Varint(); vl >= 0 {
			v = rd.Span(int(vl))
		}
		fn(k, v)
	}
}

// DeltaRule is what a walk requires of the records' offset deltas.
type DeltaRule int8

const (
	// DenseDeltas: exactly 0, 1, 2, … — what a producer must send (Kafka's
	// LogValidator for magic 2).
	DenseDeltas DeltaRule = iota
	// IncreasingDeltas: strictly increasing within [0, lastOffsetDelta] —
	// batches rewritten by compaction keep gaps where records were removed.
	IncreasingDeltas
)

// WalkRecords checks that plain (the uncompressed records section of the
// batch with header h) holds exactly h.NumRecords well-formed records with
// offset deltas as rule requires, and calls fn (if not nil) with each one;
// fn returning false stops the walk early, skipping the checks of what
// follows. Errors wrap ErrBadRecords.
func WalkRecords(plain []byte, h BatchHeader, rule DeltaRule, fn func(Record) bool) error {
	if h.NumRecords < 0 {
		return fmt.Errorf("%w: batch at offset %d: negative record count %d", ErrBadRecords, h.BaseOffset, h.NumRecords)
	}
	if int64(h.NumRecords) > int64(len(plain)) {
		// Every record takes at least one byte.
		return fmt.Errorf("%w: batch at offset %d claims %d records in %d bytes", ErrBadRecords, h.BaseOffset, h.NumRecords, len(plain))
	}
	prev := int32(-1)
	for i := int32(0); i < h.NumRecords; i++ {
		n, ln := kbin.Varint(plain)
		if ln <= 0 || n < 0 || int64(n) > int64(len(plain)-ln) {
			return fmt.Errorf("%w: batch at offset %d: record %d has a bad length", ErrBadRecords, h.BaseOffset, i)
		}
		r, err := decodeRecord(plain[ln:ln+int(n)], i)
		if err != nil {
			return fmt.Errorf("%w: batch at offset %d: %v", ErrBadRecords, h.BaseOffset, err)
		}
		r.Raw = plain[:ln+int(n)]
		plain = plain[ln+int(n):]
		switch {
		case rule == DenseDeltas && r.OffsetDelta != i:
			return fmt.Errorf("%w: batch at offset %d: record %d has offset delta %d", ErrBadRecords, h.BaseOffset, i, r.OffsetDelta)
		case rule == IncreasingDeltas && (r.OffsetDelta <= prev || r.OffsetDelta > h.LastOffsetDelta):
			return fmt.Errorf("%w: batch at offset %d: record %d has offset delta %d (previous %d, last %d)", ErrBadRecords, h.BaseOffset, i, r.OffsetDelta, prev, h.LastOffsetDelta)
		}
		prev = r.OffsetDelta
		if fn != nil && !fn(r) {
			return nil
		}
	}
	if len(plain) != 0 {
		return fmt.Errorf("%w: batch at offset %d: %d trailing bytes after %d records", ErrBadRecords, h.BaseOffset, len(plain), h.NumRecords)
	}
	return nil
}

var errMalformed = errors.New("malformed")

// decodeRecord decodes one record body (after its length prefix).
func decodeRecord(rec []byte, idx int32) (Record, error) {
	var r Record
	rd := kbin.Reader{Src: rec}
	r.Attributes = rd.Int8()
	r.TimestampDelta = rd.Varlong()
	r.OffsetDelta = rd.Varint()
	if kl := rd.Varint(); kl >= 0 {
		r.Key = rd.Span(int(kl))
		if r.Key == nil {
			r.Key = []byte{}
		}
	} else if kl < -1 {
		return r, fmt.Errorf("record %d: bad key length %d", idx, kl)
	}
	if vl := rd.Varint(); vl >= 0 {
		r.Value = rd.Span(int(vl))
		if r.Value == nil {
			r.Value = []byte{}
		}
	} else if vl < -1 {
		return r, fmt.Errorf("record %d: bad value length %d", idx, vl)
	}
	r.NumHeaders = rd.Varint()
	if r.NumHeaders < 0 {
		return r, fmt.Errorf("record %d: bad header count %d", idx, r.NumHeaders)
	}
	hstart := len(rec) - len(rd.Src)
	for j := int32(0); j < r.NumHeaders && rd.Ok(); j++ {
		if kl := rd.Varint(); kl >= 0 {
			rd.Span(int(kl))
		} else {
			return r, fmt.Errorf("record %d: null header key", idx)
		}
		if vl := rd.Varint(); vl >= 0 {
			rd.Span(int(vl))
		} else if vl < -1 {
			return r, fmt.Errorf("record %d: bad header value length %d", idx, vl)
		}
	}
	if !rd.Ok() || len(rd.Src) != 0 {
		return r, fmt.Errorf("record %d: %w", idx, errMalformed)
	}
	r.headers = rec[hstart:]
	return r, nil
}

// RecordsSection is the records part of a whole batch b.
func RecordsSection(b []byte) []byte { return b[BatchHeaderSize:] }

// SetMaxTimestamp rewrites the header's maxTimestamp and the CRC that covers
// it (Kafka rewrites a wrong header max timestamp rather than trust it).
func SetMaxTimestamp(b []byte, ts int64) {
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	SetCRC(b)
}

// SetCRC recomputes the batch's CRC-32C over everything after it, for
// batches the broker builds or rewrites itself.
func SetCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}

// maxPooledRecordsBuf bounds the decompression buffers kept for reuse, so one
// huge batch does not pin its memory in the pool.
const maxPooledRecordsBuf = 8 << 20

var recordsBufs = sync.Pool{New: func() any { return new([]byte) }}

// DecompressPooled is DecompressRecords into a pooled buffer; release returns
// it, and plain must not be used after release. Produce validation uses it:
// the decompressed records are walked and dropped (the batch is stored as the
// client compressed it), and allocating a fresh, zeroed, repeatedly grown
// buffer per batch showed in produce CPU profiles as io.ReadAll → growslice →
// memclrNoHeapPointers.
func DecompressPooled(codec int8, src []byte) (plain []byte, release func(), err error) {
	if codec == codecNone {
		return src, func() {}, nil
	}
	buf := recordsBufs.Get().(*[]byte)
	plain, err = DecompressRecords((*buf)[:0], codec, src)
	return plain, func() {
		if cap(plain) <= maxPooledRecordsBuf {
			*buf = plain[:0]
		}
		recordsBufs.Put(buf)
	}, err
}
