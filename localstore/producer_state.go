package localstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sort"
)

// maxProducerBatches is how many recent batches Kafka remembers per producer
// (ProducerStateEntry.NUM_BATCHES_TO_RETAIN), matching the idempotent
// producer's max.in.flight.requests.per.connection limit of 5, so a retried
// batch anywhere in flight is recognised as a duplicate.
const maxProducerBatches = 5

// ProducerBatch is the metadata Kafka keeps for one recent batch of an
// idempotent producer.
type ProducerBatch struct {
	FirstSeq, LastSeq       int32
	FirstOffset, LastOffset int64
	Timestamp               int64 // the batch's max timestamp
}

// ProducerEntry is one producer id's state: its epoch and its last batches,
// oldest first.
type ProducerEntry struct {
	ProducerID    int64
	Epoch         int16
	Batches       []ProducerBatch
	LastTimestamp int64
	// CoordinatorEpoch is the transaction coordinator epoch of the last
	// marker written for this producer, -1 if none. A marker from an older
	// coordinator is a zombie's (Kafka's TRANSACTION_COORDINATOR_FENCED);
	// the broker checks that before appending.
	CoordinatorEpoch int32
	// CurrentTxnFirstOffset is the first offset of the producer's ongoing
	// transaction, -1 when it has none (Kafka's currentTxnFirstOffset).
	// A non-transactional batch while it is set is Kafka's
	// INVALID_TXN_STATE; the broker checks that too.
	CurrentTxnFirstOffset int64
}

// InTransaction reports whether the producer has an ongoing transaction.
func (e ProducerEntry) InTransaction() bool { return e.CurrentTxnFirstOffset >= 0 }

// producerTable is the pure state machine behind producer state: no I/O, so
// replay during recovery and the live append path run the same code.
type producerTable map[int64]*ProducerEntry

// lastSequence computes a batch's last sequence the way Kafka does
// (DefaultRecordBatch.incrementSequence): sequences wrap from MaxInt32 to 0.
func lastSequence(baseSeq, delta int32) int32 {
	if baseSeq > math.MaxInt32-delta {
		return delta - (math.MaxInt32 - baseSeq) - 1
	}
	return baseSeq + delta
}

// update applies one appended batch whose marker (for control batches)
// was not decoded: it refreshes epoch and timestamp only. See apply.
func (t producerTable) update(h BatchHeader) { t.apply(h, nil) }

// apply applies one appended batch. Batches without a producer id (-1) are
// ignored. A new epoch forgets the previous epoch's batches (Kafka resets
// the sequence window on an epoch bump). A transactional data batch starts
// the producer's transaction if none is ongoing; a control batch (a
// transaction marker, m) ends it and records the coordinator epoch.
// Markers carry no sequence, so they add no batch. The caller keeps the
// txnTracker in step (producerState.apply).
func (t producerTable) apply(h BatchHeader, m *controlMarker) {
	if h.ProducerID < 0 {
		return
	}
	e := t[h.ProducerID]
	if e == nil {
		e = &ProducerEntry{ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, CoordinatorEpoch: -1, CurrentTxnFirstOffset: -1}
		t[h.ProducerID] = e
	}
	if e.Epoch != h.ProducerEpoch {
		e.Epoch = h.ProducerEpoch
		e.Batches = nil
	}
	e.LastTimestamp = h.MaxTimestamp
	if h.IsControl() {
		if m != nil && !m.empty {
			e.CoordinatorEpoch = m.coordinatorEpoch
			e.CurrentTxnFirstOffset = -1
		}
		return
	}
	if h.IsTransactional() && e.CurrentTxnFirstOffset < 0 {
		e.CurrentTxnFirstOffset = h.BaseOffset
	}
	if h.BaseSequence < 0 {
		return
	}
	if len(e.Batches) == maxProducerBatches {
		copy(e.Batches, e.Batches[1:])
		e.Batches = e.Batches[:maxProducerBatches-1]
	}
	e.Batches = append(e.Batches, ProducerBatch{
		FirstSeq:    h.BaseSequence,
		LastSeq:     lastSequence(h.BaseSequence, h.LastOffsetDelta),
		FirstOffset: h.BaseOffset,
		LastOffset:  h.LastOffset(),
		Timestamp:   h.MaxTimestamp,
	})
}

// clone returns a deep copy of one entry so callers never share the table's
// slices.
func (e *ProducerEntry) clone() ProducerEntry {
	c := *e
	c.Batches = append([]ProducerBatch(nil), e.Batches...)
	return c
}

// Snapshot file format (Strata's; Kafka's is a different schema):
//
//	magic "STPS" | version uint16 | count uint32 |
//	count × { producerId int64 | epoch int16 | lastTimestamp int64 |
//	          [v2: coordinatorEpoch int32 | currentTxnFirstOffset int64] | nBatches uint8 |
//	          nBatches × { firstSeq int32 | lastSeq int32 | firstOffset int64 | lastOffset int64 | timestamp int64 } } |
//	crc32c uint32 over everything before it
//
// All integers big-endian. Version 2 adds what transactions need, the
// fields of Kafka's snapshot v1 that Strata's v1 lacked: the coordinator
// epoch of the last marker and the first offset of the ongoing transaction
// (-1 for none). Version 1 files are still read (no transaction state).
const (
	snapshotMagic       = "STPS"
	snapshotVersion     = 2
	snapshotHeader      = 4 + 2 + 4
	snapshotEntryHeadV1 = 8 + 2 + 8 + 1
	snapshotEntryHead   = snapshotEntryHeadV1 + 4 + 8
	snapshotBatchSize   = 4 + 4 + 8 + 8 + 8
)

func encodeProducerSnapshot(t producerTable) []byte {
	ids := make([]int64, 0, len(t))
	for id := range t {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	b := make([]byte, 0, snapshotHeader+len(t)*(snapshotEntryHead+2*snapshotBatchSize)+4)
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := t[id]
		b = binary.BigEndian.AppendUint64(b, uint64(e.ProducerID))
		b = binary.BigEndian.AppendUint16(b, uint16(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.LastTimestamp))
		b = binary.BigEndian.AppendUint32(b, uint32(e.CoordinatorEpoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.CurrentTxnFirstOffset))
		b = append(b, uint8(len(e.Batches)))
		for _, pb := range e.Batches {
			b = binary.BigEndian.AppendUint32(b, uint32(pb.FirstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(pb.LastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.FirstOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.LastOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(pb.Timestamp))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeProducerSnapshot parses a snapshot (version 1 or 2), rejecting
// anything malformed (bad magic, version, CRC, counts that do not match
// the length, duplicate producer ids, more than maxProducerBatches
// batches, a coordinator epoch or transaction first offset below -1) with
// ErrCorruption.
func decodeProducerSnapshot(b []byte) (producerTable, error) {
	bad := func(why string) (producerTable, error) {
		return nil, fmt.Errorf("%w: producer snapshot: %s", ErrCorruption, why)
	}
	if len(b) < snapshotHeader+4 {
		return bad("too short")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if string(body[:4]) != snapshotMagic {
		return bad("bad magic")
	}
	version := binary.BigEndian.Uint16(body[4:])
	if version != 1 && version != 2 {
		return bad(fmt.Sprintf("unknown version %d", version))
	}
	if crc32.Checksum(body, castagnoli) != sum {
		return bad("crc mismatch")
	}
	head := snapshotEntryHeadV1
	if version >= 2 {
		head = snapshotEntryHead
	}
	count := binary.BigEndian.Uint32(body[6:])
	rest := body[snapshotHeader:]
	if uint64(count)*uint64(head) > uint64(len(rest)) {
		return bad("entry count exceeds file size")
	}
	t := make(producerTable, count)
	for i := uint32(0); i < count; i++ {
		if len(rest) < head {
			return bad("truncated entry")
		}
		e := &ProducerEntry{
			ProducerID:            int64(binary.BigEndian.Uint64(rest)),
			Epoch:                 int16(binary.BigEndian.Uint16(rest[8:])),
			LastTimestamp:         int64(binary.BigEndian.Uint64(rest[10:])),
			CoordinatorEpoch:      -1,
			CurrentTxnFirstOffset: -1,
		}
		p := 18
		if version >= 2 {
			e.CoordinatorEpoch = int32(binary.BigEndian.Uint32(rest[p:]))
			e.CurrentTxnFirstOffset = int64(binary.BigEndian.Uint64(rest[p+4:]))
			p += 12
			if e.CoordinatorEpoch < -1 || e.CurrentTxnFirstOffset < -1 {
				return bad("bad coordinator epoch or transaction offset")
			}
		}
		n := int(rest[p])
		rest = rest[head:]
		if n > maxProducerBatches || len(rest) < n*snapshotBatchSize {
			return bad("bad batch count")
		}
		if e.ProducerID < 0 || t[e.ProducerID] != nil {
			return bad("bad or duplicate producer id")
		}
		for j := 0; j < n; j++ {
			e.Batches = append(e.Batches, ProducerBatch{
				FirstSeq:    int32(binary.BigEndian.Uint32(rest)),
				LastSeq:     int32(binary.BigEndian.Uint32(rest[4:])),
				FirstOffset: int64(binary.BigEndian.Uint64(rest[8:])),
				LastOffset:  int64(binary.BigEndian.Uint64(rest[16:])),
				Timestamp:   int64(binary.BigEndian.Uint64(rest[24:])),
			})
			rest = rest[snapshotBatchSize:]
		}
		t[e.ProducerID] = e
	}
	if len(rest) != 0 {
		return bad("trailing bytes")
	}
	return t, nil
}
