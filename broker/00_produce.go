package broker

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
)

// Produce, versions 3–11 (RecordBatch v2 only; v3 is the first to carry it).
//
// Each partition's records must be exactly one v2 batch (Kafka's
// LogValidator rule for magic 2); the partition (broker/partition/produce.go)
// checks length, CRC-32C, header sanity, the records themselves and
// timestamps (KIP-937), then assigns offsets and appends the client's bytes
// unchanged (compression kept as-is). message.timestamp.type=LogAppendTime
// stamps the broker clock. On a compacted topic every record needs a key. A
// batch with bad records is refused whole — INVALID_RECORD, or
// INVALID_TIMESTAMP if a timestamp was out of range — and from v8 on
// (KIP-467) RecordErrors names each bad record by its index in the batch,
// with ErrorMessage for the partition, so a client fails those records rather
// than retry the batch. Idempotent batches pass the sequence checks; a
// duplicate gets its original offset back.
//
// Transactional batches (KIP-98) are accepted from a request with a
// transactional id; the first batch of a producer's transaction in a
// partition is verified with its coordinator first (KIP-890, txn_verify.go).
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
	// timeout bounds the wait for acks=all (Kafka's DelayedProduce):
	// REQUEST_TIMED_OUT past it.
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res := c.b.producePartition(rt.Topic, rp.Partition, rp.Records, acks, c.b.produceTxn(req.TransactionID, rt.Topic, rp.Partition, h.version), timeout)
			if res.Err != nil {
				failed = true
				sp.ErrorCode = res.Err.Code
				if res.Msg != "" {
					msg := res.Msg
					sp.ErrorMessage = &msg
				}
				sp.BaseOffset = -1
				if h.version >= 8 {
					sp.ErrorRecords = recordErrorsFor(res.RecordErrors)
				}
			} else {
				sp.BaseOffset = res.BaseOffset
			}
			sp.LogAppendTime = res.LogAppendTime
			sp.LogStartOffset = res.LogStartOffset
			if res.Err == kerr.NotLeaderForPartition && h.version >= 10 {
				c.b.produceLeaderHint(&sp, resp, rt.Topic, rp.Partition)
			}
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

// producePartition is one partition's part of a Produce request: the
// partition validates and appends (broker/partition), this counts the outcome.
func (b *Broker) producePartition(topicName string, idx int32, records []byte, acks int16, txn *partition.Txn, timeout time.Duration) partition.ProduceResult {
	if acks != 0 && acks != 1 && acks != -1 {
		return partition.ProduceResult{Err: kerr.InvalidRequiredAcks, Msg: fmt.Sprintf("acks must be -1, 0 or 1, got %d", acks), BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
	}
	t, p := b.topics.partition(topicName, idx)
	if p == nil {
		return partition.ProduceResult{Err: kerr.UnknownTopicOrPartition, Msg: fmt.Sprintf("unknown topic or partition %s-%d", topicName, idx), BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
	}
	if t.meta.Internal {
		return partition.ProduceResult{Err: kerr.InvalidTopicException, Msg: fmt.Sprintf("cannot produce to internal topic %s", topicName), BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
	}
	if p.Replicated() && acks != -1 && time.Now().After(b.coord.SessionValidUntil()) {
		// This broker cannot prove its session is live: the controller
		// may already have elected another leader. acks=0/1 writes would
		// be acknowledged by one replica only, so a fenced leader must not
		// take them (acks=all cannot complete anyway: the high watermark
		// needs followers, which follow the new leader).
		return partition.ProduceResult{Err: kerr.NotLeaderForPartition, Msg: "this broker's cluster session has lapsed", BaseOffset: -1, LogAppendTime: -1, LogStartOffset: -1}
	}
	// A deadline only where something can wait on it: acks=all on a
	// replicated partition, or a transactional batch that may have to be
	// verified with its coordinator. The single-node hot path allocates no
	// timer.
	ctx := b.ctx
	if (acks == -1 && p.Replicated()) || txn != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(b.ctx, timeout)
		defer cancel()
	}
	res := p.Produce(ctx, records, acks, txn)
	switch {
	case res.Err == nil && res.Duplicate:
		b.metrics.duplicateBatches.Inc()
	case res.Err == nil:
		b.metrics.bytesIn.Add(float64(res.Bytes))
		b.metrics.recordsIn.Add(float64(res.Records))
	case rejectionReasons[res.Reason]:
		b.metrics.rejectedBatches.WithLabelValues(res.Reason).Inc()
	}
	return res
}

// recordErrorsFor is KIP-467's RecordErrors: the index of each record that
// made the batch invalid, with why.
func recordErrorsFor(errs []partition.RecordError) []kmsg.ProduceResponseTopicPartitionErrorRecord {
	if len(errs) == 0 {
		return nil
	}
	out := make([]kmsg.ProduceResponseTopicPartitionErrorRecord, len(errs))
	for i := range errs {
		out[i].RelativeOffset = errs[i].Index
		out[i].ErrorMessage = &errs[i].Message
	}
	return out
}

// rejectionReasons are the strata_rejected_batches_total labels: bad input
// and unmet guarantees, not the broker's own failures.
var rejectionReasons = map[string]bool{"corrupt": true, "invalid": true, "too_large": true, "timestamp": true, "sequence": true, "not_enough_replicas": true}

// produceLeaderHint fills KIP-951's CurrentLeader and NodeEndpoints (Produce
// v10+), so a producer that wrote to a broker that is no longer the leader
// goes to the new one without waiting for a metadata refresh.
func (b *Broker) produceLeaderHint(sp *kmsg.ProduceResponseTopicPartition, resp *kmsg.ProduceResponse, topicName string, idx int32) {
	t := b.topics.get(topicName)
	if t == nil || idx < 0 || idx >= t.count() {
		return
	}
	pm := t.meta.Partitions[idx]
	if pm.Leader < 0 || pm.Leader == b.opts.NodeID {
		return
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = pm.Leader, pm.LeaderEpoch
	for _, ne := range resp.Brokers {
		if ne.NodeID == pm.Leader {
			return
		}
	}
	for _, br := range b.topics.liveBrokers() {
		if br.NodeID == pm.Leader {
			ne := kmsg.NewProduceResponseBroker()
			ne.NodeID, ne.Host, ne.Port = br.NodeID, br.Host, br.Port
			if br.Rack != "" {
				rack := br.Rack
				ne.Rack = &rack
			}
			resp.Brokers = append(resp.Brokers, ne)
		}
	}
}

// produceTxn is the transactional side of one partition's produce: nil for
// a request without a transactional id.
func (b *Broker) produceTxn(transactionalID *string, topicName string, idx int32, version int16) *partition.Txn {
	if transactionalID == nil {
		return nil
	}
	id := *transactionalID
	return &partition.Txn{TransactionalID: id, Verify: func(ctx context.Context, producerID int64, producerEpoch int16) *kerr.Error {
		return produceVerifyError(b.verifyInTxn(ctx, id, producerID, producerEpoch, txnTP(topicName, idx)), version)
	}}
}
