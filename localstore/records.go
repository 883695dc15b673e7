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
// value), in order. The walk has checked the headers' framing.
func (r Record) EachHeader(fn func(key, value []byte)) {
	b := r.headers
	for i := int32(0); i < r.NumHeaders; i++ {
		kl, n := kbin.Varint(b)
		k := b[n : n+int(kl)]
		b = b[n+int(kl):]
		v, rest, _ := nullableBytes(b, errHeaderVal)
		b = rest
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
	var r Record
	for i := int32(0); i < h.NumRecords; i++ {
		n, ln := kbin.Varint(plain)
		if ln <= 0 || n < 0 || int64(n) > int64(len(plain)-ln) {
			return fmt.Errorf("%w: batch at offset %d: record %d has a bad length", ErrBadRecords, h.BaseOffset, i)
		}
		if err := decodeRecord(&r, plain[ln:ln+int(n)]); err != nil {
			return fmt.Errorf("%w: batch at offset %d: record %d: %v", ErrBadRecords, h.BaseOffset, i, err)
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

var (
	errMalformed = errors.New("malformed")
	errKeyLen    = errors.New("bad key length")
	errValueLen  = errors.New("bad value length")
	errHeaders   = errors.New("bad header count")
	errHeaderKey = errors.New("null or bad header key")
	errHeaderVal = errors.New("bad header value length")
	errTrailing  = errors.New("bytes after the headers")
)

// decodeRecord decodes one record body (after its length prefix) into r.
// It reads varints straight off the slice: it runs for every produced
// record, and the generic reader's bookkeeping showed in produce profiles.
func decodeRecord(r *Record, rec []byte) error {
	if len(rec) < 1 {
		return errMalformed
	}
	r.Attributes = int8(rec[0])
	b := rec[1:]
	var n int
	if r.TimestampDelta, n = kbin.Varlong(b); n <= 0 {
		return errMalformed
	}
	b = b[n:]
	if r.OffsetDelta, n = kbin.Varint(b); n <= 0 {
		return errMalformed
	}
	b = b[n:]
	var err error
	if r.Key, b, err = nullableBytes(b, errKeyLen); err != nil {
		return err
	}
	if r.Value, b, err = nullableBytes(b, errValueLen); err != nil {
		return err
	}
	if r.NumHeaders, n = kbin.Varint(b); n <= 0 || r.NumHeaders < 0 {
		return errHeaders
	}
	b = b[n:]
	r.headers = b
	for j := int32(0); j < r.NumHeaders; j++ {
		kl, n := kbin.Varint(b)
		if n <= 0 || kl < 0 || int64(kl) > int64(len(b)-n) {
			return errHeaderKey
		}
		b = b[n+int(kl):]
		if _, b, err = nullableBytes(b, errHeaderVal); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return errTrailing
	}
	return nil
}

// nullableBytes reads a varint length (-1: null) and that many bytes.
func nullableBytes(b []byte, bad error) ([]byte, []byte, error) {
	l, n := kbin.Varint(b)
	switch {
	case n <= 0 || l < -1 || int64(l) > int64(len(b)-n):
		return nil, nil, bad
	case l == -1:
		return nil, b[n:], nil
	}
	return b[n : n+int(l) : n+int(l)], b[n+int(l):], nil
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
