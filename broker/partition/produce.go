package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/localstore"
)

// ProduceResult is the outcome of one partition's part of a Produce request.
type ProduceResult struct {
	// Err is the Kafka error code for the partition; nil means success.
	Err *kerr.Error
	// Msg is a human-readable reason for Err (Produce v8+ ErrorMessage).
	Msg string
	// Reason labels a rejection for metrics: corrupt, invalid, too_large,
	// timestamp, sequence, not_enough_replicas.
	Reason         string
	BaseOffset     int64
	LogAppendTime  int64
	LogStartOffset int64
	// RecordErrors name the records that made the batch invalid (KIP-467,
	// Produce v8+ RecordErrors); the whole batch is refused either way.
	RecordErrors []RecordError
	// Duplicate: an idempotent retry answered from producer state.
	Duplicate bool
	Bytes     int
	Records   int32
}

func reject(err *kerr.Error, reason, format string, args ...any) ProduceResult {
	return ProduceResult{Err: err, Reason: reason, Msg: fmt.Sprintf(format, args...), BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
}

// Produce validates a client's records for this partition and appends them
// as leader. Kafka's LogValidator rules for magic 2: exactly one batch, its
// length, CRC-32C and header sane, at most max.message.bytes, the records
// themselves (count, offset deltas 0,1,2…, sizes — decompressing if needed),
// a key on every record of a compacted topic, and timestamps against
// message.timestamp.before/after.max.ms (KIP-937); bad records are named
// one by one (RecordErrors, KIP-467) and refuse the whole batch. A
// wrong header max timestamp is rewritten. Idempotent batches pass the
// sequence checks; a duplicate gets its original offset back. The bytes are
// stored as the client compressed them.
//
// Transactional batches (KIP-98) need the request's transactional id and,
// when they would start the producer's transaction in this partition, the
// coordinator's confirmation that the partition is in it (KIP-890, txn.go);
// client control batches are INVALID_RECORD.
//
// acks=-1 is refused up front when the ISR is smaller than
// min.insync.replicas (NOT_ENOUGH_REPLICAS), rather than accepting data that
// cannot be replicated enough.
//
// With more than one replica, acks=-1 answers once the high watermark has
// passed the batch (every in-sync replica has it), bounded by ctx
// (REQUEST_TIMED_OUT), or NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank
// below min.insync.replicas meanwhile; acks=1 answers after the local append.
func (p *Partition) Produce(ctx context.Context, records []byte, acks int16, txn *Txn) ProduceResult {
	cfg := p.cfg.Load()
	if !p.IsLeader() {
		return reject(kerr.NotLeaderForPartition, "", "this broker is not the leader of %s-%d", p.Topic, p.Index)
	}
	if acks == -1 {
		if err := p.checkMinISR(cfg.MinInsyncReplicas); err != nil {
			return reject(err, "not_enough_replicas", "in-sync replicas %d are fewer than min.insync.replicas %d", p.isrSize.Load(), cfg.MinInsyncReplicas)
		}
	}
	batch, hdr, res := p.validate(records, cfg)
	if res.Err != nil {
		return res
	}
	v, res := p.verifyTxn(ctx, hdr, txn)
	if res.Err != nil {
		return res
	}
	return p.appendLeader(ctx, batch, hdr, cfg, acks, v)
}

// validate checks a produced records section; res.Err is nil when the batch
// may be appended.
func (p *Partition) validate(records []byte, cfg *Config) ([]byte, localstore.BatchHeader, ProduceResult) {
	var hdr localstore.BatchHeader
	batches, err := localstore.SplitBatches(records)
	if err != nil || len(batches) == 0 {
		return nil, hdr, reject(kerr.CorruptMessage, "corrupt", "records are not whole record batches: %v", err)
	}
	if len(batches) != 1 {
		return nil, hdr, reject(kerr.InvalidRecord, "invalid", "a v2 produce request must hold exactly one record batch per partition, got %d", len(batches))
	}
	batch := batches[0]
	hdr, err = localstore.ValidateBatch(batch)
	if err != nil {
		return nil, hdr, reject(kerr.CorruptMessage, "corrupt", "record batch failed validation: %v", err)
	}
	if len(batch) > int(cfg.MaxMessageBytes) {
		return nil, hdr, reject(kerr.MessageTooLarge, "too_large", "record batch of %d bytes exceeds max.message.bytes %d", len(batch), cfg.MaxMessageBytes)
	}
	if hdr.IsControl() {
		// Kafka's LogValidator: only the broker writes markers.
		return nil, hdr, reject(kerr.InvalidRecord, "invalid", "clients may not write control batches")
	}
	if hdr.NumRecords == 0 || hdr.LastOffsetDelta != hdr.NumRecords-1 {
		return nil, hdr, reject(kerr.InvalidRecord, "invalid", "batch claims %d records with last offset delta %d", hdr.NumRecords, hdr.LastOffsetDelta)
	}
	plain, release, err := localstore.DecompressPooled(hdr.Compression(), localstore.RecordsSection(batch))
	if err != nil {
		release()
		return nil, hdr, reject(kerr.CorruptMessage, "corrupt", "cannot decompress records: %v", err)
	}
	var now int64
	if !cfg.LogAppendTime {
		now = p.clock.Now().UnixMilli()
	}
	maxTs := int64(-1 << 63)
	var recErrs recordErrors
	idx := int32(0)
	err = localstore.WalkRecords(plain, hdr, localstore.DenseDeltas, func(r localstore.Record) bool {
		ts := hdr.BaseTimestamp + r.TimestampDelta
		maxTs = max(maxTs, ts)
		switch {
		case cfg.Compacted && r.Key == nil:
			recErrs.addNoKey(idx, p)
		case cfg.LogAppendTime:
		case cfg.TimestampBeforeMax < now && ts < now-cfg.TimestampBeforeMax:
			recErrs.add(idx, true, fmt.Sprintf("timestamp %d is more than message.timestamp.before.max.ms (%d) before the broker's time %d", ts, cfg.TimestampBeforeMax, now))
		case ts > now && ts-now > cfg.TimestampAfterMax:
			recErrs.add(idx, true, fmt.Sprintf("timestamp %d is more than message.timestamp.after.max.ms (%d) after the broker's time %d", ts, cfg.TimestampAfterMax, now))
		}
		idx++
		return true
	})
	release()
	if err != nil {
		return nil, hdr, reject(kerr.InvalidRecord, "invalid", "%v", err)
	}
	if len(recErrs.errs) > 0 {
		return nil, hdr, recErrs.result(hdr.NumRecords)
	}
	if !cfg.LogAppendTime && hdr.MaxTimestamp != maxTs {
		// Kafka rewrites a wrong header max timestamp rather than
		// trusting it; indexes and retention depend on it.
		localstore.SetMaxTimestamp(batch, maxTs)
		hdr.MaxTimestamp = maxTs
	}
	return batch, hdr, ProduceResult{}
}

// appendLeader runs the idempotence check and the append under one hold of
// the append lock, so a retried batch can never be appended twice. A
// duplicate under acks=-1 still waits for its original to be committed, as
// Kafka's purgatory does.
func (p *Partition) appendLeader(ctx context.Context, batch []byte, hdr localstore.BatchHeader, cfg *Config, acks int16, v *Verification) ProduceResult {
	p.mu.Lock()
	if !p.IsLeader() {
		p.mu.Unlock()
		return reject(kerr.NotLeaderForPartition, "", "this broker is not the leader of %s-%d", p.Topic, p.Index)
	}
	if hdr.ProducerID >= 0 {
		entry, known := p.log.ProducerState(hdr.ProducerID)
		chk := checkSequence(entry, known, hdr)
		if chk.err != nil {
			p.mu.Unlock()
			return reject(chk.err, "sequence", "producer %d epoch %d sequence %d rejected", hdr.ProducerID, hdr.ProducerEpoch, hdr.BaseSequence)
		}
		if chk.duplicate != nil {
			lso := p.LogStartOffset()
			w, kerrv := p.leaderAppended(chk.duplicate.LastOffset+1, acks == -1, cfg.MinInsyncReplicas)
			p.mu.Unlock()
			res := ProduceResult{BaseOffset: chk.duplicate.FirstOffset, LogAppendTime: -1, LogStartOffset: lso, Duplicate: true}
			return p.finishAcks(ctx, res, w, kerrv)
		}
		if kerrv := p.checkTxnLocked(hdr, v); kerrv != nil {
			p.mu.Unlock()
			return reject(kerrv, "", "producer %d epoch %d: transactional state does not allow this batch", hdr.ProducerID, hdr.ProducerEpoch)
		}
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), cfg.LogAppendTime)
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, localstore.ErrClosed) {
			return reject(kerr.NotLeaderForPartition, "closing", "partition is closing")
		}
		p.logger.Error("append failed", "topic", p.Topic, "partition", p.Index, "err", err)
		return reject(kerr.KafkaStorageError, "storage", "append failed: %v", err)
	}
	if hdr.IsTransactional() {
		p.txnAppendedLocked(hdr.ProducerID)
	}
	w, kerrv := p.leaderAppended(info.LastOffset+1, acks == -1, cfg.MinInsyncReplicas)
	lso := p.LogStartOffset()
	p.mu.Unlock()
	p.wake()
	res := ProduceResult{BaseOffset: info.BaseOffset, LogAppendTime: info.LogAppendTime, LogStartOffset: lso, Bytes: len(batch), Records: hdr.NumRecords}
	return p.finishAcks(ctx, res, w, kerrv)
}

// finishAcks waits for an acks=all waiter (if any) and turns a replication
// failure into the produce's error; the batch stays in the log either way,
// as in Kafka, and a retry of an idempotent batch is answered from producer
// state.
func (p *Partition) finishAcks(ctx context.Context, res ProduceResult, w *ackWaiter, kerrv *kerr.Error) ProduceResult {
	if kerrv == nil && w != nil {
		kerrv = p.waitAcks(ctx, w)
	}
	if kerrv == nil {
		return res
	}
	reason := ""
	if kerrv == kerr.NotEnoughReplicasAfterAppend {
		reason = "not_enough_replicas"
	}
	out := reject(kerrv, reason, "%s-%d: records appended at %d but not acknowledged: %s", p.Topic, p.Index, res.BaseOffset, kerrv.Message)
	out.LogStartOffset = res.LogStartOffset
	return out
}

// AppendInternal appends a batch the broker built itself (the group
// coordinator's offset records, later transaction markers) as leader, and
// returns once it is committed — acks=all semantics: in a cluster, once the
// high watermark has passed it. ctx bounds the wait.
func (p *Partition) AppendInternal(ctx context.Context, batch []byte) (localstore.AppendInfo, error) {
	p.mu.Lock()
	if !p.IsLeader() {
		p.mu.Unlock()
		return localstore.AppendInfo{}, ErrNotLeader
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), false)
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, localstore.ErrClosed) {
			return info, ErrClosed
		}
		return info, fmt.Errorf("partition: append to %s-%d: %w", p.Topic, p.Index, err)
	}
	w, kerrv := p.leaderAppended(info.LastOffset+1, true, p.cfg.Load().MinInsyncReplicas)
	p.mu.Unlock()
	p.wake()
	if kerrv == nil && w != nil {
		kerrv = p.waitAcks(ctx, w)
	}
	if kerrv != nil {
		return info, fmt.Errorf("partition: append to %s-%d not committed: %w", p.Topic, p.Index, kerrv)
	}
	return info, nil
}

// ErrNotLeader is returned for writes to a replica that is not the leader.
var ErrNotLeader = fmt.Errorf("partition: not the leader: %w", kerr.NotLeaderForPartition)
