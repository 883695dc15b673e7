package main

import (
	"encoding/binary"
	"errors"
	"fmt"

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

// decompress undoes the batch codec with the broker's own (bounded) decoder.
func decompress(codec int8, b []byte) ([]byte, error) {
	return localstore.DecompressRecords(nil, codec, b)
}
