package broker

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
)

// ListOffsets, versions 1–9.
//
// Special timestamps: -2 earliest (log start), -1 latest (high watermark),
// -3 the max timestamp (KIP-734, v7+), -4 earliest local (KIP-1005, v9+),
// -5 latest tiered (KIP-1005: -1 when nothing is tiered). Any other timestamp
// finds the first offset whose timestamp is at or after it, in the bucket or
// locally (broker/partition/read.go); none found gives offset -1, as Kafka
// does.
// Reads stop at the high watermark; with isolation_level=read_committed
// (v2+, KIP-98) at the last stable offset, which is also what latest answers.
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
			c.b.listOffset(&sp, rt.Topic, rp, h.version >= 2 && req.IsolationLevel == 1)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}

func (b *Broker) listOffset(sp *kmsg.ListOffsetsResponseTopicPartition, topicName string, rp kmsg.ListOffsetsRequestTopicPartition, readCommitted bool) {
	_, p := b.topics.partition(topicName, rp.Partition)
	if p == nil {
		sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
		return
	}
	epoch := p.LeaderEpoch()
	if ec := checkLeaderEpoch(rp.CurrentLeaderEpoch, epoch); ec != nil {
		sp.ErrorCode = ec.Code
		return
	}
	sp.LeaderEpoch = epoch
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	lookup := p.ListOffset
	if readCommitted {
		lookup = p.ListOffsetCommitted
	}
	off, ts, err := lookup(ctx, rp.Timestamp)
	switch {
	case errors.Is(err, partition.ErrBadTimestamp):
		sp.ErrorCode = kerr.InvalidRequest.Code
	case err != nil:
		b.log.Error("offset lookup failed", "topic", topicName, "partition", rp.Partition, "timestamp", rp.Timestamp, "err", err)
		sp.ErrorCode = kerr.KafkaStorageError.Code
	default:
		sp.Offset, sp.Timestamp = off, ts
	}
}
