package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// ErrOffsetOutOfRange is returned for reads and lookups outside the log.
var ErrOffsetOutOfRange = localstore.ErrOffsetOutOfRange

// ReadLocal returns a pinned slice of whole batches from offset, up to
// maxBytes (the first batch may exceed it when minOne is set, KIP-74) and
// never past the high watermark. The caller releases the slice.
func (p *Partition) ReadLocal(offset int64, maxBytes int, minOne bool) (localstore.Slice, error) {
	return p.log.Read(offset, max(maxBytes, 0), p.HighWatermark(), minOne)
}

// ReadCommitted returns a copy of whole batches from offset up to maxBytes
// and the high watermark (the group coordinator replays __consumer_offsets
// with it).
func (p *Partition) ReadCommitted(offset int64, maxBytes int) ([]byte, error) {
	return p.log.ReadBytes(offset, maxBytes, p.HighWatermark())
}

// ReadUpTo returns a copy of whole batches from offset up to maxBytes and
// never past upTo (capped at the log end): the group coordinator's loader
// replays __consumer_offsets to the log end, as Kafka's does.
func (p *Partition) ReadUpTo(offset int64, maxBytes int, upTo int64) ([]byte, error) {
	return p.log.ReadBytes(offset, maxBytes, min(upTo, p.log.LogEndOffset()))
}

// IsRemoteOffset reports whether offset lies below the local log but within
// the remote one, so a read must go to the bucket.
func (p *Partition) IsRemoteOffset(offset int64) bool {
	return p.tier.Load() != nil && offset < p.log.LogStartOffset() && offset >= p.LogStartOffset()
}

// ReadRemote reads whole batches at offset from the bucket (up to maxBytes,
// at least one batch), within ctx, as views of cached chunks. Reads through
// one session continue each other (fetching ahead); a nil session reads
// once. waiting (may be nil) is called if the read has to wait for the
// bucket (tiering.Session.ReadNotify).
func (p *Partition) ReadRemote(ctx context.Context, s *tiering.Session, offset int64, maxBytes int, waiting func()) (tiering.Records, error) {
	tp := p.tier.Load()
	if tp == nil {
		return tiering.Records{}, ErrOffsetOutOfRange
	}
	if s == nil {
		return tp.Read(ctx, offset, maxBytes)
	}
	return s.ReadNotify(ctx, tp, offset, maxBytes, waiting)
}

// Special ListOffsets timestamps.
const (
	LatestTimestamp        = -1 // the high watermark
	EarliestTimestamp      = -2 // the log start (remote included)
	MaxTimestampTimestamp  = -3 // the record with the largest timestamp (KIP-734)
	EarliestLocalTimestamp = -4 // the local log start (KIP-1005)
	LatestTieredTimestamp  = -5 // the last offset in the bucket (KIP-1005)
)

// ErrBadTimestamp is returned by ListOffset for an unknown negative timestamp.
var ErrBadTimestamp = errors.New("partition: not a valid ListOffsets timestamp")

// ListOffset answers one ListOffsets partition: the offset (and timestamp,
// -1 if none) for a special timestamp, or the first record whose timestamp
// is at or after ts — searched in the bucket first when older data is
// there, narrowed to the record in local batches as Kafka does. Nothing
// found is offset -1. Reads stop at the high watermark.
func (p *Partition) ListOffset(ctx context.Context, ts int64) (offset, timestamp int64, err error) {
	return p.listOffset(ctx, ts, p.HighWatermark())
}

// listOffset is ListOffset bounded by hw (the high watermark, or the last
// stable offset for read_committed).
func (p *Partition) listOffset(ctx context.Context, ts, hw int64) (offset, timestamp int64, err error) {
	tp := p.tier.Load()
	switch ts {
	case EarliestTimestamp:
		return p.LogStartOffset(), -1, nil
	case EarliestLocalTimestamp:
		return p.log.LogStartOffset(), -1, nil
	case LatestTimestamp:
		return hw, -1, nil
	case LatestTieredTimestamp:
		if tp != nil {
			if end := tp.Manifest().EndOffset(); end > 0 {
				return end - 1, -1, nil
			}
		}
		return -1, -1, nil
	case MaxTimestampTimestamp:
		mts, off, err := p.log.MaxTimestamp()
		if err != nil {
			return -1, -1, fmt.Errorf("partition: max timestamp of %s-%d: %w", p.Topic, p.Index, err)
		}
		if off < 0 || off >= hw {
			return -1, -1, nil
		}
		return off, mts, nil
	}
	if ts < 0 {
		return -1, -1, ErrBadTimestamp
	}
	if tp != nil && p.LogStartOffset() < p.log.LogStartOffset() {
		off, rts, found, err := tp.OffsetForTimestamp(ctx, ts)
		if err != nil {
			return -1, -1, fmt.Errorf("partition: remote timestamp lookup in %s-%d: %w", p.Topic, p.Index, err)
		}
		if found && off < p.log.LogStartOffset() {
			return off, rts, nil
		}
	}
	off, lts, found, err := p.log.OffsetForTimestamp(ts)
	if err != nil {
		return -1, -1, fmt.Errorf("partition: timestamp lookup in %s-%d: %w", p.Topic, p.Index, err)
	}
	if !found || off >= hw {
		return -1, -1, nil
	}
	if exact, exactTs, ok := p.recordAtTimestamp(off, hw, ts); ok {
		return exact, exactTs, nil
	}
	return off, lts, nil
}

// recordAtTimestamp narrows localstore's batch-level answer to the record, as
// Kafka does: the first record in the batch at off whose timestamp is >= ts.
// ok is false if the batch cannot be read or decoded (the batch answer stands).
func (p *Partition) recordAtTimestamp(off, hw, ts int64) (int64, int64, bool) {
	raw, err := p.log.ReadBytes(off, 1, hw)
	if err != nil || len(raw) < localstore.BatchHeaderSize {
		return 0, 0, false
	}
	h, err := localstore.ParseBatchHeader(raw)
	if err != nil || h.Size() > len(raw) {
		return 0, 0, false
	}
	if h.TimestampType() == 1 {
		return 0, 0, false // LogAppendTime: every record has the batch's time
	}
	plain, err := localstore.DecompressRecords(nil, h.Compression(), raw[localstore.BatchHeaderSize:h.Size()])
	if err != nil {
		return 0, 0, false
	}
	var found int64 = -1
	var foundTs int64
	err = localstore.WalkRecords(plain, h, localstore.IncreasingDeltas, func(r localstore.Record) bool {
		recTs := h.BaseTimestamp + r.TimestampDelta
		if recTs >= ts && h.BaseOffset+int64(r.OffsetDelta) >= off {
			found, foundTs = h.BaseOffset+int64(r.OffsetDelta), recTs
			return false
		}
		return true
	})
	if err != nil || found < 0 {
		return 0, 0, false
	}
	return found, foundTs, true
}
