package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
)

// decodedRecord is one record of a batch with its absolute offset and timestamp.
type decodedRecord struct {
	Offset      int64
	OffsetDelta int64
	Timestamp   int64
	Key, Value  []byte
	HeaderKeys  []string
}

var errCorruptRecords = errors.New("corrupt records")

// maxDecompressedBatch bounds decompression so a corrupt or hostile segment
// cannot exhaust memory; Kafka batches are limited to max.message.bytes
// compressed, and no sane codec ratio exceeds this.
const maxDecompressedBatch = 256 << 20

// decodeBatchRecords decodes the records of one whole v2 batch (raw, with
// header h) with kmsg, decompressing the records section first.
func decodeBatchRecords(raw []byte, h localstore.BatchHeader) ([]decodedRecord, error) {
	var batch kmsg.RecordBatch
	if err := batch.ReadFrom(raw); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	data, err := decompress(h.Compression(), batch.Records)
	if err != nil {
		return nil, fmt.Errorf("decompress %s records: %w", compressionName(h.Compression()), err)
	}
	// NumRecords comes from the file: trust it only as far as the bytes go.
	recs := make([]decodedRecord, 0, min(max(int(h.NumRecords), 0), len(data)))
	for i := int32(0); i < h.NumRecords; i++ {
		length, n := binary.Varint(data)
		if n <= 0 || length < 0 || int64(len(data)-n) < length {
			return nil, fmt.Errorf("%w: record %d of %d is truncated", errCorruptRecords, i, h.NumRecords)
		}
		var r kmsg.Record
		if err := r.ReadFrom(data[:n+int(length)]); err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", errCorruptRecords, i, err)
		}
		data = data[n+int(length):]
		ts := h.BaseTimestamp + r.TimestampDelta64
		if h.TimestampType() == 1 {
			ts = h.MaxTimestamp // LogAppendTime applies to every record
		}
		d := decodedRecord{
			Offset:      h.BaseOffset + int64(r.OffsetDelta),
			OffsetDelta: int64(r.OffsetDelta),
			Timestamp:   ts,
			Key:         r.Key,
			Value:       r.Value,
		}
		for _, hd := range r.Headers {
			d.HeaderKeys = append(d.HeaderKeys, hd.Key)
		}
		recs = append(recs, d)
	}
	if len(data) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last record", errCorruptRecords, len(data))
	}
	return recs, nil
}

// decompress undoes the batch codec (Kafka's ids: 1 gzip, 2 snappy, 3 lz4,
// 4 zstd).
func decompress(codec int8, b []byte) ([]byte, error) {
	switch codec {
	case 0:
		return b, nil
	case 1:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		return readAllLimited(zr)
	case 2:
		return decodeSnappy(b)
	case 3:
		return readAllLimited(lz4.NewReader(bytes.NewReader(b)))
	case 4:
		zr, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(maxDecompressedBatch))
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		return zr.DecodeAll(b, nil)
	}
	return nil, fmt.Errorf("unknown codec id %d", codec)
}

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxDecompressedBatch+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxDecompressedBatch {
		return nil, fmt.Errorf("decompresses to more than %d bytes", maxDecompressedBatch)
	}
	return b, nil
}

// xerialMagic opens snappy data framed by the Java client's xerial
// SnappyOutputStream: the magic, a version and a compatible-version int32,
// then blocks of [int32 big-endian length][raw snappy block].
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

// decodeSnappy decodes a raw snappy block or xerial-framed snappy, the two
// forms Kafka clients write (the Java client always frames).
func decodeSnappy(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, xerialMagic) {
		return decodeSnappyBlock(nil, b)
	}
	if len(b) < xerialHeaderLen {
		return nil, fmt.Errorf("short xerial header")
	}
	b = b[xerialHeaderLen:]
	var out []byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("truncated xerial block length")
		}
		n := binary.BigEndian.Uint32(b)
		b = b[4:]
		if uint64(n) > uint64(len(b)) {
			return nil, fmt.Errorf("xerial block of %d bytes overruns the data", n)
		}
		var err error
		if out, err = decodeSnappyBlock(out, b[:n]); err != nil {
			return nil, err
		}
		b = b[n:]
	}
	return out, nil
}

// decodeSnappyBlock appends the decoding of one raw snappy block to dst.
// s2's block decoder reads snappy blocks (s2 is a superset).
func decodeSnappyBlock(dst, block []byte) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if len(dst)+n > maxDecompressedBatch {
		return nil, fmt.Errorf("decompresses to more than %d bytes", maxDecompressedBatch)
	}
	dec, err := s2.Decode(nil, block)
	if err != nil {
		return nil, err
	}
	return append(dst, dec...), nil
}
