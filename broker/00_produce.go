package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/localstore"
)

// Produce, versions 3–11 (RecordBatch v2 only; v3 is the first to carry it).
//
// Each partition's records must be exactly one v2 batch (Kafka's
// LogValidator rule for magic 2). We check length, CRC-32C, header sanity, the
// records themselves (count, offset deltas, sizes — decompressing if needed,
// as Kafka does) and timestamps against message.timestamp.before/after.max.ms
// (KIP-937), then assign offsets and append the client's bytes unchanged
// (compression kept as-is). message.timestamp.type=LogAppendTime stamps the
// broker clock. Idempotent batches pass the sequence checks in
// idempotence.go; a duplicate gets its original offset back.
//
// acks: 0 sends no response (and on error closes the connection, so the client
// notices, as Kafka does); 1 and -1 answer after the append — on a single node
// the leader is the whole ISR, so the high watermark moves with the append.
func init() { register(kmsg.Produce, 3, 11, handleProduce) }

func handleProduce(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	acks := req.Acks
	failed := false
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res := c.b.producePartition(rt.Topic, rp.Partition, rp.Records, acks, req.TransactionID != nil)
			sp.ErrorCode = res.err.Code
			if res.err != errNone {
				failed = true
				if res.msg != "" {
					msg := res.msg
					sp.ErrorMessage = &msg
				}
				sp.BaseOffset = -1
			} else {
				sp.BaseOffset = res.baseOffset
			}
			sp.LogAppendTime = res.logAppendTime
			sp.LogStartOffset = res.logStartOffset
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if acks == 0 {
		if failed {
			return nil, fmt.Errorf("%w: acks=0 produce failed", errCloseConn)
		}
		return nil, nil
	}
	return resp, nil
}

type produceResult struct {
	err            *kerr.Error
	msg            string
	baseOffset     int64
	logAppendTime  int64
	logStartOffset int64
}

func produceErr(err *kerr.Error, format string, args ...any) produceResult {
	return produceResult{err: err, msg: fmt.Sprintf(format, args...), logAppendTime: -1, logStartOffset: -1}
}

func (b *Broker) producePartition(topicName string, idx int32, records []byte, acks int16, transactional bool) produceResult {
	if acks != 0 && acks != 1 && acks != -1 {
		return produceErr(kerr.InvalidRequiredAcks, "acks must be -1, 0 or 1, got %d", acks)
	}
	t, p := b.topics.partition(topicName, idx)
	if p == nil {
		return produceErr(kerr.UnknownTopicOrPartition, "unknown topic or partition %s-%d", topicName, idx)
	}
	if t.meta.Internal {
		return produceErr(kerr.InvalidTopicException, "cannot produce to internal topic %s", topicName)
	}
	cfg := p.cfg.Load()
	if isr := len(t.meta.Partitions[idx].ISR); acks == -1 && int32(isr) < cfg.minInsyncReplicas {
		// Kafka refuses acks=all writes up front when the ISR is smaller
		// than min.insync.replicas, rather than accepting data it cannot
		// replicate enough.
		b.metrics.rejectedBatches.WithLabelValues("not_enough_replicas").Inc()
		return produceErr(kerr.NotEnoughReplicas, "in-sync replicas %d are fewer than min.insync.replicas %d", isr, cfg.minInsyncReplicas)
	}
	batches, err := localstore.SplitBatches(records)
	if err != nil || len(batches) == 0 {
		b.metrics.rejectedBatches.WithLabelValues("corrupt").Inc()
		return produceErr(kerr.CorruptMessage, "records are not whole record batches: %v", err)
	}
	if len(batches) != 1 {
		b.metrics.rejectedBatches.WithLabelValues("invalid").Inc()
		return produceErr(kerr.InvalidRecord, "a v2 produce request must hold exactly one record batch per partition, got %d", len(batches))
	}
	batch := batches[0]
	hdr, err := localstore.ValidateBatch(batch)
	if err != nil {
		b.metrics.rejectedBatches.WithLabelValues("corrupt").Inc()
		return produceErr(kerr.CorruptMessage, "record batch failed validation: %v", err)
	}
	if len(batch) > int(cfg.maxMessageBytes) {
		b.metrics.rejectedBatches.WithLabelValues("too_large").Inc()
		return produceErr(kerr.MessageTooLarge, "record batch of %d bytes exceeds max.message.bytes %d", len(batch), cfg.maxMessageBytes)
	}
	if transactional || hdr.IsTransactional() || hdr.IsControl() {
		return produceErr(kerr.InvalidTxnState, "transactions are not supported yet")
	}
	if hdr.NumRecords == 0 || hdr.LastOffsetDelta != hdr.NumRecords-1 {
		b.metrics.rejectedBatches.WithLabelValues("invalid").Inc()
		return produceErr(kerr.InvalidRecord, "batch claims %d records with last offset delta %d", hdr.NumRecords, hdr.LastOffsetDelta)
	}
	body, release, err := decompressPooled(hdr.Compression(), batch[batchRecordsPos:])
	if err != nil {
		release()
		b.metrics.rejectedBatches.WithLabelValues("corrupt").Inc()
		return produceErr(kerr.CorruptMessage, "cannot decompress records: %v", err)
	}
	stats, err := walkRecords(body, hdr)
	release()
	if err != nil {
		b.metrics.rejectedBatches.WithLabelValues("invalid").Inc()
		return produceErr(kerr.InvalidRecord, "%v", err)
	}
	now := b.now().UnixMilli()
	if !cfg.logAppendTime {
		if cfg.timestampBeforeMax < now && stats.minTimestamp < now-cfg.timestampBeforeMax {
			b.metrics.rejectedBatches.WithLabelValues("timestamp").Inc()
			return produceErr(kerr.InvalidTimestamp, "timestamp %d is more than message.timestamp.before.max.ms (%d) before the broker's time %d", stats.minTimestamp, cfg.timestampBeforeMax, now)
		}
		if stats.maxTimestamp > now && stats.maxTimestamp-now > cfg.timestampAfterMax {
			b.metrics.rejectedBatches.WithLabelValues("timestamp").Inc()
			return produceErr(kerr.InvalidTimestamp, "timestamp %d is more than message.timestamp.after.max.ms (%d) after the broker's time %d", stats.maxTimestamp, cfg.timestampAfterMax, now)
		}
		if hdr.MaxTimestamp != stats.maxTimestamp {
			// Kafka rewrites a wrong header max timestamp rather than
			// trusting it; indexes and retention depend on it.
			setMaxTimestamp(batch, stats.maxTimestamp)
		}
	}

	p.appendMu.Lock()
	if hdr.ProducerID >= 0 {
		entry, known := p.log.ProducerState(hdr.ProducerID)
		chk := checkSequence(entry, known, hdr)
		if chk.err != nil {
			p.appendMu.Unlock()
			b.metrics.rejectedBatches.WithLabelValues("sequence").Inc()
			return produceErr(chk.err, "producer %d epoch %d sequence %d rejected", hdr.ProducerID, hdr.ProducerEpoch, hdr.BaseSequence)
		}
		if chk.duplicate != nil {
			lso := p.logStartOffset()
			p.appendMu.Unlock()
			b.metrics.duplicateBatches.Inc()
			return produceResult{err: errNone, baseOffset: chk.duplicate.FirstOffset, logAppendTime: -1, logStartOffset: lso}
		}
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), cfg.logAppendTime)
	lso := p.logStartOffset()
	p.appendMu.Unlock()
	if err != nil {
		b.log.Error("append failed", "topic", topicName, "partition", idx, "err", err)
		if errors.Is(err, localstore.ErrClosed) {
			return produceErr(kerr.NotLeaderForPartition, "partition is closing")
		}
		return produceErr(kerr.KafkaStorageError, "append failed: %v", err)
	}
	p.wake()
	b.metrics.bytesIn.Add(float64(len(batch)))
	b.metrics.recordsIn.Add(float64(hdr.NumRecords))
	return produceResult{err: errNone, baseOffset: info.BaseOffset, logAppendTime: info.LogAppendTime, logStartOffset: lso}
}
