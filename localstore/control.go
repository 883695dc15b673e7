package localstore

// Transaction markers (KIP-98 control batches): a batch with the control
// and transactional attribute bits whose one record has a ControlRecordKey
// (version int16, type int16: 0 abort, 1 commit) as key and an
// EndTxnMarker (version int16, coordinatorEpoch int32) as value. The
// transaction coordinator asks each partition leader to write one
// (WriteTxnMarkers); the log uses it to end the producer's transaction.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control record types of a marker's key (Kafka's ControlRecordType).
const (
	ControlTypeAbort  int16 = 0
	ControlTypeCommit int16 = 1
)

// controlMarker is a decoded transaction marker. empty is set for a
// control batch without records: the cleaner left it to keep the
// producer's epoch, and it ends nothing.
type controlMarker struct {
	commit           bool
	coordinatorEpoch int32
	empty            bool
}

// maxControlBatchSize bounds what is read from disk to decode a marker: a
// real one is about 80 bytes.
const maxControlBatchSize = 4096

// parseControlBatch decodes the marker of a control batch b (header h).
// Errors wrap ErrCorruption: Kafka's EndTransactionMarker.deserialize
// rejects the same things (a missing or short key or value, a type other
// than abort or commit; other control types, such as KRaft's, never reach
// a partition log).
func parseControlBatch(b []byte, h BatchHeader) (controlMarker, error) {
	if h.NumRecords == 0 {
		return controlMarker{empty: true}, nil
	}
	recs, err := decodeRecords(b, h)
	if err != nil {
		return controlMarker{}, err
	}
	var r kmsg.Record
	if err := r.ReadFrom(recs[0].raw); err != nil {
		return controlMarker{}, fmt.Errorf("%w: control batch at offset %d: %w", ErrCorruption, h.BaseOffset, err)
	}
	var key kmsg.ControlRecordKey
	if err := key.ReadFrom(r.Key); err != nil || key.Version < 0 {
		return controlMarker{}, fmt.Errorf("%w: control batch at offset %d: bad control record key", ErrCorruption, h.BaseOffset)
	}
	if int16(key.Type) != ControlTypeAbort && int16(key.Type) != ControlTypeCommit {
		return controlMarker{}, fmt.Errorf("%w: control batch at offset %d: control type %d is not a transaction marker", ErrCorruption, h.BaseOffset, key.Type)
	}
	// The value may be longer in a future version; version 0's fields come
	// first (Kafka reads them the same way).
	if len(r.Value) < 6 {
		return controlMarker{}, fmt.Errorf("%w: control batch at offset %d: end transaction marker of %d bytes", ErrCorruption, h.BaseOffset, len(r.Value))
	}
	var v kmsg.EndTxnMarker
	_ = v.ReadFrom(r.Value[:6])
	if v.Version < 0 {
		return controlMarker{}, fmt.Errorf("%w: control batch at offset %d: end transaction marker version %d", ErrCorruption, h.BaseOffset, v.Version)
	}
	return controlMarker{commit: int16(key.Type) == ControlTypeCommit, coordinatorEpoch: v.CoordinatorEpoch}, nil
}

// ParseControlBatch reports what a control batch says: commit or abort and
// the coordinator epoch. The broker uses it to check markers it is asked
// to write; the log decodes its own copy on append.
func ParseControlBatch(b []byte) (commit bool, coordinatorEpoch int32, err error) {
	h, err := ValidateBatch(b)
	if err != nil {
		return false, 0, err
	}
	if !h.IsControl() {
		return false, 0, fmt.Errorf("%w: batch at offset %d is not a control batch", ErrCorruption, h.BaseOffset)
	}
	m, err := parseControlBatch(b, h)
	if err != nil {
		return false, 0, err
	}
	if m.empty {
		return false, 0, fmt.Errorf("%w: control batch at offset %d has no record", ErrCorruption, h.BaseOffset)
	}
	return m.commit, m.coordinatorEpoch, nil
}

// BuildControlBatch builds the commit or abort marker a partition leader
// appends for producerID at producerEpoch when the transaction coordinator
// of coordinatorEpoch ends its transaction (Kafka's
// MemoryRecords.withEndTransactionMarker): attributes transactional and
// control, no sequence (-1), uncompressed, one record at offset delta 0
// with timestamp ts (milliseconds). Base offset and leader epoch are left
// for Append to stamp.
func BuildControlBatch(producerID int64, producerEpoch int16, coordinatorEpoch int32, commit bool, ts int64) []byte {
	typ := ControlTypeAbort
	if commit {
		typ = ControlTypeCommit
	}
	key := (&kmsg.ControlRecordKey{Version: 0, Type: kmsg.ControlRecordKeyType(typ)}).AppendTo(nil)
	value := (&kmsg.EndTxnMarker{Version: 0, CoordinatorEpoch: coordinatorEpoch}).AppendTo(nil)
	r := kmsg.Record{Key: key, Value: value}
	body := r.AppendTo(nil)[1:] // drop the placeholder zero length
	r.Length = int32(len(body))
	records := r.AppendTo(nil)
	kb := kmsg.RecordBatch{
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           attrTransactional | attrControl,
		LastOffsetDelta:      0,
		FirstTimestamp:       ts,
		MaxTimestamp:         ts,
		ProducerID:           producerID,
		ProducerEpoch:        producerEpoch,
		FirstSequence:        -1,
		NumRecords:           1,
		Records:              records,
		Length:               int32(BatchHeaderSize - batchLengthOverhead + len(records)),
	}
	b := kb.AppendTo(make([]byte, 0, BatchHeaderSize+len(records)))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}
