package localstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// BatchHeaderSize is the fixed size of a Kafka RecordBatch v2 header (magic 2,
// KIP-98). Every batch on disk starts with one.
const BatchHeaderSize = 61

// Byte offsets of the RecordBatch v2 header fields. baseOffset, batchLength and
// partitionLeaderEpoch sit before the CRC so that a broker can rewrite the
// offset and epoch without recomputing it (Kafka does exactly this).
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// batchLengthOverhead is what batchLength does not count: baseOffset
	// and batchLength themselves.
	batchLengthOverhead = 12
	// minBatchLength is the batchLength of a batch with a header and no
	// records (61 - 12).
	minBatchLength = BatchHeaderSize - batchLengthOverhead
)

// Attribute bits of a v2 batch.
const (
	attrCompressionMask = 0x07
	attrTimestampType   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded 61-byte RecordBatch v2 header.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32 // the batchLength field: bytes after it
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// LastOffset is the offset of the batch's last record. Kafka keeps it even
// after compaction removes that record, so offsets stay monotonic.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Size is the whole batch's size in bytes, header included.
func (h BatchHeader) Size() int { return batchLengthOverhead + int(h.Length) }

// Compression returns the codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
func (h BatchHeader) Compression() int8 { return int8(h.Attributes & attrCompressionMask) }

// IsTransactional reports whether the batch belongs to a transaction (KIP-98).
func (h BatchHeader) IsTransactional() bool { return h.Attributes&attrTransactional != 0 }

// IsControl reports whether the batch holds a transaction marker.
func (h BatchHeader) IsControl() bool { return h.Attributes&attrControl != 0 }

// TimestampType is 0 for CreateTime, 1 for LogAppendTime.
func (h BatchHeader) TimestampType() int8 {
	if h.Attributes&attrTimestampType != 0 {
		return 1
	}
	return 0
}

// ParseBatchHeader decodes the 61-byte header at the start of b. It checks
// that the header is self-consistent (magic 2, a batchLength that covers the
// header, non-negative counts) but not the CRC: callers that hold the whole
// batch use ValidateBatch.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	if len(b) < BatchHeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: batch header needs %d bytes, have %d", ErrCorruption, BatchHeaderSize, len(b))
	}
	h := BatchHeader{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[offBaseOffset:])),
		Length:               int32(binary.BigEndian.Uint32(b[offLength:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  binary.BigEndian.Uint32(b[offCRC:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:        int64(binary.BigEndian.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
		NumRecords:           int32(binary.BigEndian.Uint32(b[offNumRecords:])),
	}
	switch {
	case h.Magic != 2:
		return h, fmt.Errorf("%w: batch magic %d, want 2", ErrCorruption, h.Magic)
	case h.Length < minBatchLength:
		return h, fmt.Errorf("%w: batch length %d below minimum %d", ErrCorruption, h.Length, minBatchLength)
	case h.NumRecords < 0:
		return h, fmt.Errorf("%w: negative record count %d", ErrCorruption, h.NumRecords)
	case h.LastOffsetDelta < 0:
		return h, fmt.Errorf("%w: negative lastOffsetDelta %d", ErrCorruption, h.LastOffsetDelta)
	}
	return h, nil
}

// ValidateBatch checks that b is exactly one whole batch with a sane header
// and a matching CRC-32C. This is the check Kafka's broker does on produce
// (DefaultRecordBatch.ensureValid) and on log recovery.
func ValidateBatch(b []byte) (BatchHeader, error) {
	h, err := ParseBatchHeader(b)
	if err != nil {
		return h, err
	}
	if int64(len(b)) != int64(h.Size()) {
		return h, fmt.Errorf("%w: batch length field says %d bytes, have %d", ErrCorruption, h.Size(), len(b))
	}
	if got := crc32.Checksum(b[offAttributes:], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: batch crc %08x, computed %08x", ErrCorruption, h.CRC, got)
	}
	return h, nil
}

// SplitBatches cuts concatenated batches (a produce request's records field)
// into one slice per batch, sharing b's memory. Headers are parsed but CRCs
// are not checked. Any trailing partial batch is an error: unlike a fetch
// response, a produce request must not carry one.
func SplitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for pos := 0; pos < len(b); {
		h, err := ParseBatchHeader(b[pos:])
		if err != nil {
			return nil, fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		end := pos + h.Size()
		if end > len(b) || end < pos {
			return nil, fmt.Errorf("%w: batch at byte %d needs %d bytes, %d remain", ErrCorruption, pos, h.Size(), len(b)-pos)
		}
		out = append(out, b[pos:end:end])
		pos = end
	}
	return out, nil
}

// SetBaseOffset rewrites the batch's baseOffset. It is outside the CRC, so the
// checksum stays valid; this is how Kafka assigns offsets without touching
// the records.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetPartitionLeaderEpoch rewrites partitionLeaderEpoch (outside the CRC, see
// KIP-101: the leader stamps its epoch on every batch it appends).
func SetPartitionLeaderEpoch(b []byte, e int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(e))
}

// SetLogAppendTime stamps the batch with the broker's time, as Kafka does for
// topics with message.timestamp.type=LogAppendTime: the timestamp-type bit is
// set and baseTimestamp/maxTimestamp become ts. Both are inside the CRC, so it
// is recomputed. Records keep their deltas; consumers ignore them for
// LogAppendTime batches.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | attrTimestampType
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offBaseTimestamp:], uint64(ts))
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}
