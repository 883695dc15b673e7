package broker

import (
	"context"
	"time"

	"github.com/strata-broker/strata/localstore"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListOffsets, versions 1–9.
//
// Special timestamps: -2 earliest (log start), -1 latest (high watermark),
// -3 the max timestamp (KIP-734, v7+), -4 earliest local (KIP-1005, v9+: the
// same as -2 until tiered storage lands), -5 latest tiered (KIP-1005: -1 /
// nothing tiered yet). Any other timestamp finds the first offset whose
// timestamp is at or after it; none found gives offset -1, as Kafka does.
// Reads stop at the high watermark; read_committed equals it (no transactions).
func init() { register(kmsg.ListOffsets, 1, 9, handleListOffsets) }

func handleListOffsets(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			c.b.listOffset(&sp, rt.Topic, rp)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) listOffset(sp *kmsg.ListOffsetsResponseTopicPartition, topicName string, rp kmsg.ListOffsetsRequestTopicPartition) {
	_, p := b.topics.partition(topicName, rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	epoch := p.leaderEpoch.Load()
	if ec := checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch); ec != nil {
		sp.ErrorCode = ec.Code
		return
	}
	sp.LeaderEpoch = epoch
	sp.Timestamp = -1
	hw := p.highWatermark()
	tp := p.tier.Load()
	switch rp.Timestamp {
	case -2:
		sp.Offset = p.logStartOffset()
	case -4:
		sp.Offset = p.log.LogStartOffset()
	case -1:
		sp.Offset = hw
	case -5:
		// KIP-1005: the last offset copied to remote storage.
		sp.Offset = -1
		if tp != nil {
			if end := tp.Manifest().EndOffset(); end > 0 {
				sp.Offset = end - 1
			}
		}
	case -3:
		ts, off, err := p.log.MaxTimestamp()
		if err != nil {
			b.log.Error("max timestamp lookup failed", "topic", topicName, "partition", rp.Partition, "err", err)
			sp.ErrorCode = kerr.KafkaStorageError.Code
			return
		}
		if off < 0 || off >= hw {
			sp.Offset = -1
			return
		}
		sp.Offset, sp.Timestamp = off, ts
	default:
		if rp.Timestamp < 0 {
			sp.ErrorCode = kerr.InvalidRequest.Code
			return
		}
		if tp != nil && p.logStartOffset() < p.log.LogStartOffset() {
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			off, ts, found, err := tp.OffsetForTimestamp(ctx, rp.Timestamp)
			cancel()
			if err != nil {
				b.log.Error("remote timestamp lookup failed", "topic", topicName, "partition", rp.Partition, "err", err)
				sp.ErrorCode = kerr.KafkaStorageError.Code
				return
			}
			if found && off < p.log.LogStartOffset() {
				sp.Offset, sp.Timestamp = off, ts
				return
			}
		}
		off, ts, found, err := p.log.OffsetForTimestamp(rp.Timestamp)
		if err != nil {
			b.log.Error("timestamp lookup failed", "topic", topicName, "partition", rp.Partition, "err", err)
			sp.ErrorCode = kerr.KafkaStorageError.Code
			return
		}
		if !found || off >= hw {
			sp.Offset = -1
			return
		}
		sp.Offset, sp.Timestamp = off, ts
		if exact, exactTs, ok := b.recordAtTimestamp(p, off, hw, rp.Timestamp); ok {
			sp.Offset, sp.Timestamp = exact, exactTs
		}
	}
}

// recordAtTimestamp narrows localstore's batch-level answer to the record, as
// Kafka does: the first record in the batch at off whose timestamp is >= ts.
// ok is false if the batch cannot be read or decoded (the batch answer stands).
func (b *Broker) recordAtTimestamp(p *partition, off, hw, ts int64) (int64, int64, bool) {
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
	body, err := decompress(h.Compression(), raw[batchRecordsPos:h.Size()])
	if err != nil {
		return 0, 0, false
	}
	var found int64 = -1
	var foundTs int64
	_, err = eachRecordTimestamp(body, h, func(offsetDelta int32, recTs int64) bool {
		if recTs >= ts && h.BaseOffset+int64(offsetDelta) >= off {
			found, foundTs = h.BaseOffset+int64(offsetDelta), recTs
			return false
		}
		return true
	})
	if err != nil || found < 0 {
		return 0, 0, false
	}
	return found, foundTs, true
}
