package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/retention"
)

// DeleteRecords, versions 0–2.
//
// Moves a partition's log start offset forward (-1 means the high watermark)
// and deletes the segments now wholly below it. Beyond the high watermark is
// OFFSET_OUT_OF_RANGE, as in Kafka. The new start is checkpointed before any
// file is removed, so a crash in between leaves only unreferenced files.
func init() { register(kmsg.DeleteRecords, 0, 2, handleDeleteRecords) }

func handleDeleteRecords(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	b := c.b
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			_, p := b.topics.partition(rt.Topic, rp.Partition)
			if p == nil {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			hw := p.HighWatermark()
			off := rp.Offset
			if off == -1 {
				off = hw
			}
			switch {
			case off < 0 || off > hw:
				sp.ErrorCode = kerr.OffsetOutOfRange.Code
			default:
				// Reaches into the bucket for tiered partitions: the remote
				// log start moves first (retention.Delete).
				if err := retention.Delete(b.ctx, p, remoteOf(p), off); err != nil {
					b.log.Error("delete records failed", "topic", rt.Topic, "partition", rp.Partition, "err", err)
					sp.ErrorCode = kerr.KafkaStorageError.Code
				} else {
					sp.LowWatermark = max(p.LogStartOffset(), off)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
