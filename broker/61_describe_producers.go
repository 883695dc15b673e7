package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeProducers, version 0 (KIP-664).
//
// For operators finding hanging transactions: each partition's leader lists
// the producers its log remembers — id, epoch, last sequence and timestamp,
// the coordinator epoch of the last marker, and the first offset of the
// producer's open transaction (-1 if none). UNKNOWN_TOPIC_OR_PARTITION for
// a partition not hosted here, NOT_LEADER_OR_FOLLOWER on a follower (Kafka
// answers only from the leader).
func init() { register(kmsg.DescribeProducers, 0, 0, handleDescribeProducers) }

func handleDescribeProducers(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeProducersRequest)
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, idx := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = idx
			_, p := c.b.topics.partition(rt.Topic, idx)
			switch {
			case p == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !p.IsLeader():
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				for _, e := range p.Producers() {
					ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
					ap.ProducerID, ap.ProducerEpoch = e.ProducerID, int32(e.Epoch)
					ap.LastSequence, ap.LastTimestamp = -1, e.LastTimestamp
					if n := len(e.Batches); n > 0 {
						ap.LastSequence = e.Batches[n-1].LastSeq
					}
					ap.CoordinatorEpoch, ap.CurrentTxnStartOffset = e.CoordinatorEpoch, e.CurrentTxnFirstOffset
					sp.ActiveProducers = append(sp.ActiveProducers, ap)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
