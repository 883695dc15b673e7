package localstore

// Record-level work of the log cleaner: decoding a batch's records (through
// franz-go's kmsg types, after decompressing), deciding per record, and
// writing the survivors into a new batch the way Kafka's
// MemoryRecords.filterTo does.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Compression codec ids of the batch attributes.
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLz4    = 3
	codecZstd   = 4
)

// xerialMagic starts snappy data framed by snappy-java (the Java client's
// SnappyOutputStream); xerialHeader adds version 1 and compatible version 1.
var (
	xerialMagic  = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}
	xerialHeader = append(append([]byte(nil), xerialMagic...), 0, 0, 0, 1, 0, 0, 0, 1)
)

// xerialBlockSize is the block size snappy-java writes.
const xerialBlockSize = 32 << 10

var (
	// lz4 readers and writers hold block buffers; pooling them keeps a
	// pass from allocating them per batch. 64 KiB blocks are what Kafka's
	// KafkaLZ4BlockOutputStream writes.
	lz4Writers = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb))
		return w
	}}
	// A 64 KiB window, as franz-go's producer uses, keeps librdkafka
	// consumers' decoder memory small.
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(64<<10), zstd.WithZeroFrames(true))
		return e
	}}
)

// decompressRecords returns the uncompressed records section of a batch.
func decompressRecords(codec int8, src []byte) ([]byte, error) {
	return DecompressRecords(nil, codec, src)
}

// compressRecords compresses a records section with codec. Snappy keeps the
// framing the original batch had (xerial for the Java client, a raw block
// for librdkafka and franz-go), so each client family reads back what it
// wrote. lz4 is the LZ4 frame format Kafka's KafkaLZ4BlockOutputStream
// reads and writes (64 KiB independent blocks).
func compressRecords(codec int8, xerial bool, src []byte) ([]byte, error) {
	var buf bytes.Buffer
	switch codec {
	case codecNone:
		return src, nil
	case codecGzip:
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", errCodec, err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", errCodec, err)
		}
		return buf.Bytes(), nil
	case codecSnappy:
		if !xerial {
			return s2.EncodeSnappy(nil, src), nil
		}
		out := append([]byte(nil), xerialHeader...)
		for len(src) > 0 {
			n := min(len(src), xerialBlockSize)
			blk := s2.EncodeSnappy(nil, src[:n])
			out = binary.BigEndian.AppendUint32(out, uint32(len(blk)))
			out = append(out, blk...)
			src = src[n:]
		}
		return out, nil
	case codecLz4:
		w := lz4Writers.Get().(*lz4.Writer)
		defer lz4Writers.Put(w)
		w.Reset(&buf)
		if _, err := w.Write(src); err != nil {
			return nil, fmt.Errorf("%w: lz4: %w", errCodec, err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("%w: lz4: %w", errCodec, err)
		}
		return buf.Bytes(), nil
	case codecZstd:
		e := zstdEncoders.Get().(*zstd.Encoder)
		defer zstdEncoders.Put(e)
		return e.EncodeAll(src, nil), nil
	default:
		return nil, fmt.Errorf("%w: unknown compression codec %d", errCodec, codec)
	}
}

// cleanerRecord is one decoded record with its raw bytes (length prefix
// included), which the cleaner copies unchanged into rewritten batches:
// offset and timestamp deltas stay valid because the rewritten batch keeps
// its base offset and base timestamp.
type cleanerRecord struct {
	raw       []byte
	offset    int64
	key       []byte // nil for a null key
	tombstone bool   // null value
}

// decodeRecords decompresses and decodes the records of a data batch b
// (header h) with the one record walker, checking what the cleaner relies
// on: exactly h.NumRecords well-formed records with offset deltas increasing
// within [0, lastOffsetDelta]. Errors wrap ErrCorruption.
func decodeRecords(b []byte, h BatchHeader) ([]cleanerRecord, error) {
	if len(b) != h.Size() || len(b) < BatchHeaderSize {
		return nil, fmt.Errorf("%w: batch at offset %d: length %d, header says %d", ErrCorruption, h.BaseOffset, len(b), h.Size())
	}
	data, err := decompressRecords(h.Compression(), RecordsSection(b))
	if err != nil {
		return nil, fmt.Errorf("%w: batch at offset %d: %w", ErrCorruption, h.BaseOffset, err)
	}
	recs := make([]cleanerRecord, 0, min(max(int(h.NumRecords), 0), len(data)))
	err = WalkRecords(data, h, IncreasingDeltas, func(r Record) bool {
		recs = append(recs, cleanerRecord{raw: r.Raw, offset: h.BaseOffset + int64(r.OffsetDelta), key: r.Key, tombstone: r.Value == nil})
		return true
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// rebuildBatch writes the kept records of batch b as a new batch, as Kafka's
// MemoryRecords.filterTo → buildRetainedRecordsInto does for v2: the same
// base offset and, by overrideLastOffset, the same lastOffsetDelta (so
// offsets stay monotonic and the producer's last sequence survives), the
// same producer id, epoch, base sequence, partition leader epoch,
// attributes and codec (recompressed). Unlike Kafka, base and max
// timestamps are kept as they were rather than recomputed from the kept
// records: the deltas stay valid, and the time index entries built from the
// old max timestamps stay correct. With no records left the batch becomes
// an empty, uncompressed header (Kafka's writeEmptyHeader, kept for
// producer state).
func rebuildBatch(b []byte, kept []cleanerRecord) ([]byte, error) {
	var kb kmsg.RecordBatch
	if err := kb.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("%w: rebuild batch: %w", ErrCorruption, err)
	}
	codec := int8(kb.Attributes & attrCompressionMask)
	var plain []byte
	for _, r := range kept {
		plain = append(plain, r.raw...)
	}
	records := plain
	if len(kept) == 0 {
		kb.Attributes &^= attrCompressionMask
	} else if codec != codecNone {
		var err error
		if records, err = compressRecords(codec, codec == codecSnappy && isXerial(kb.Records), plain); err != nil {
			return nil, err
		}
	}
	kb.NumRecords = int32(len(kept))
	kb.Records = records
	kb.Length = int32(BatchHeaderSize - batchLengthOverhead + len(records))
	kb.CRC = 0
	out := kb.AppendTo(make([]byte, 0, BatchHeaderSize+len(records)))
	SetCRC(out)
	return out, nil
}
