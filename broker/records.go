package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kbin"

	"github.com/strata-broker/strata/localstore"
)

// Offsets of RecordBatch v2 header fields we rewrite.
const (
	batchAttributesPos   = 21
	batchMaxTimestampPos = 35
	batchRecordsPos      = localstore.BatchHeaderSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordStats is what walking a batch's records tells us.
type recordStats struct {
	count        int32
	minTimestamp int64
	maxTimestamp int64
	// lastTimestamp is the most recently walked record's timestamp.
	lastTimestamp int64
}

var errBadRecords = errors.New("invalid records")

// walkRecords checks that b (the uncompressed records section of a batch)
// holds exactly h.NumRecords well-formed records whose offset deltas run
// 0,1,2,… as Kafka's LogValidator requires for v2, and gathers timestamps.
func walkRecords(b []byte, h localstore.BatchHeader) (recordStats, error) {
	return eachRecordTimestamp(b, h, nil)
}

// eachRecordTimestamp is walkRecords that also calls fn (if not nil) with
// each record's offset delta and timestamp; fn returning false stops the walk
// early (and skips the trailing-bytes check).
func eachRecordTimestamp(b []byte, h localstore.BatchHeader, fn func(offsetDelta int32, ts int64) bool) (recordStats, error) {
	st := recordStats{minTimestamp: 1<<63 - 1, maxTimestamp: -1 << 63}
	if h.NumRecords < 0 {
		return st, fmt.Errorf("%w: negative record count %d", errBadRecords, h.NumRecords)
	}
	for i := int32(0); i < h.NumRecords; i++ {
		n, ln := kbin.Varint(b)
		if ln <= 0 || n < 0 || int(n) > len(b)-ln {
			return st, fmt.Errorf("%w: record %d: bad length", errBadRecords, i)
		}
		rec := b[ln : ln+int(n)]
		b = b[ln+int(n):]
		if err := checkRecord(rec, i, h.BaseTimestamp, &st); err != nil {
			return st, err
		}
		st.count++
		if fn != nil && !fn(i, st.lastTimestamp) {
			return st, nil
		}
	}
	if len(b) != 0 {
		return st, fmt.Errorf("%w: %d trailing bytes after %d records", errBadRecords, len(b), h.NumRecords)
	}
	return st, nil
}

func checkRecord(rec []byte, idx int32, baseTs int64, st *recordStats) error {
	r := kbin.Reader{Src: rec}
	r.Int8() // attributes, unused in v2
	tsDelta := r.Varlong()
	offDelta := r.Varint()
	if kl := r.Varint(); kl >= 0 {
		r.Span(int(kl))
	} else if kl < -1 {
		return fmt.Errorf("%w: record %d: bad key length", errBadRecords, idx)
	}
	if vl := r.Varint(); vl >= 0 {
		r.Span(int(vl))
	} else if vl < -1 {
		return fmt.Errorf("%w: record %d: bad value length", errBadRecords, idx)
	}
	nh := r.Varint()
	if nh < 0 {
		return fmt.Errorf("%w: record %d: bad header count", errBadRecords, idx)
	}
	for j := int32(0); j < nh && r.Ok(); j++ {
		if kl := r.Varint(); kl >= 0 {
			r.Span(int(kl))
		} else {
			return fmt.Errorf("%w: record %d: null header key", errBadRecords, idx)
		}
		if vl := r.Varint(); vl >= 0 {
			r.Span(int(vl))
		} else if vl < -1 {
			return fmt.Errorf("%w: record %d: bad header value length", errBadRecords, idx)
		}
	}
	if !r.Ok() || len(r.Src) != 0 {
		return fmt.Errorf("%w: record %d: malformed", errBadRecords, idx)
	}
	if offDelta != idx {
		return fmt.Errorf("%w: record %d has offset delta %d", errBadRecords, idx, offDelta)
	}
	ts := baseTs + tsDelta
	st.lastTimestamp = ts
	if ts < st.minTimestamp {
		st.minTimestamp = ts
	}
	if ts > st.maxTimestamp {
		st.maxTimestamp = ts
	}
	return nil
}

// decompress returns the uncompressed records section of a batch.
func decompress(codec int8, src []byte) ([]byte, error) {
	return localstore.DecompressRecords(nil, codec, src)
}

// maxPooledRecordsBuf bounds the decompression buffers kept for reuse, so one
// huge batch does not pin its memory in the pool.
const maxPooledRecordsBuf = 8 << 20

var recordsBufs = sync.Pool{New: func() any { return new([]byte) }}

// decompressPooled decompresses into a pooled buffer; release returns it, and
// body must not be used after release. Produce validation uses it: the
// decompressed records are walked and dropped (the batch is stored as the
// client compressed it), and allocating a fresh, zeroed, repeatedly grown
// buffer per batch showed in produce CPU profiles as io.ReadAll → growslice →
// memclrNoHeapPointers.
func decompressPooled(codec int8, src []byte) (body []byte, release func(), err error) {
	if codec == 0 {
		return src, func() {}, nil
	}
	buf := recordsBufs.Get().(*[]byte)
	body, err = localstore.DecompressRecords((*buf)[:0], codec, src)
	return body, func() {
		if cap(body) <= maxPooledRecordsBuf {
			*buf = body[:0]
		}
		recordsBufs.Put(buf)
	}, err
}

// setMaxTimestamp rewrites the header's maxTimestamp and the CRC that covers it.
func setMaxTimestamp(batch []byte, ts int64) {
	binary.BigEndian.PutUint64(batch[batchMaxTimestampPos:], uint64(ts))
	binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[batchAttributesPos:], castagnoli))
}
