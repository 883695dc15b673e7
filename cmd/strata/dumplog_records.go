package main

import (
	"errors"
	"fmt"

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
// header h) with localstore's record walker, decompressing first.
func decodeBatchRecords(raw []byte, h localstore.BatchHeader) ([]decodedRecord, error) {
	if len(raw) < localstore.BatchHeaderSize || len(raw) != h.Size() {
		return nil, fmt.Errorf("%w: batch of %d bytes, header says %d", errCorruptRecords, len(raw), h.Size())
	}
	data, err := localstore.DecompressRecords(nil, h.Compression(), localstore.RecordsSection(raw))
	if err != nil {
		return nil, fmt.Errorf("decompress %s records: %w", compressionName(h.Compression()), err)
	}
	// NumRecords comes from the file: trust it only as far as the bytes go.
	recs := make([]decodedRecord, 0, min(max(int(h.NumRecords), 0), len(data)))
	rule := localstore.DenseDeltas
	if h.NumRecords != h.LastOffsetDelta+1 {
		rule = localstore.IncreasingDeltas // compacted: gaps where records went
	}
	err = localstore.WalkRecords(data, h, rule, func(r localstore.Record) bool {
		ts := h.BaseTimestamp + r.TimestampDelta
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
		r.EachHeader(func(k, _ []byte) { d.HeaderKeys = append(d.HeaderKeys, string(k)) })
		recs = append(recs, d)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errCorruptRecords, err)
	}
	return recs, nil
}
