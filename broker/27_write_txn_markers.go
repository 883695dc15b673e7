package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/txn"
)

// WriteTxnMarkers, versions 0–1.
//
// Between brokers: a transaction coordinator asks each partition's leader to
// append a commit or abort marker for a producer (KIP-98). Each partition is
// written through its one write path (partition.AppendMarker) with acks=all
// and answered once committed: UNKNOWN_TOPIC_OR_PARTITION for a partition
// not hosted here, NOT_LEADER_OR_FOLLOWER where this broker is not the
// leader, INVALID_PRODUCER_EPOCH for a producer epoch older than the
// partition has seen, TRANSACTION_COORDINATOR_FENCED for a coordinator
// epoch older than the last marker's (a zombie coordinator),
// NOT_ENOUGH_REPLICAS / REQUEST_TIMED_OUT when the in-sync replicas do not
// follow in time (the coordinator retries). A marker in __consumer_offsets
// also commits or aborts the producer's pending TxnOffsetCommit offsets.
// v2 (transaction version, KIP-890 part 2) is not advertised.
func init() { register(kmsg.WriteTxnMarkers, 0, 1, handleWriteTxnMarkers) }

func handleWriteTxnMarkers(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.WriteTxnMarkersRequest)
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	b := c.b
	for _, rm := range req.Markers {
		var tps []txn.TopicPartition
		for _, rt := range rm.Topics {
			for _, p := range rt.Partitions {
				tps = append(tps, txnTP(rt.Topic, p))
			}
		}
		m := partition.Marker{ProducerID: rm.ProducerID, ProducerEpoch: rm.ProducerEpoch, CoordinatorEpoch: rm.CoordinatorEpoch, Commit: rm.Committed}
		var res map[txn.TopicPartition]*kerr.Error
		if rm.ProducerID < 0 || rm.ProducerEpoch < 0 {
			res = map[txn.TopicPartition]*kerr.Error{}
			for _, tp := range tps {
				res[tp] = kerr.InvalidProducerIDMapping
			}
		} else {
			ctx, cancel := context.WithTimeout(b.ctx, markerWriteTimeout)
			res = b.writeMarkersLocal(ctx, m, tps)
			cancel()
		}
		sm := kmsg.NewWriteTxnMarkersResponseMarker()
		sm.ProducerID = rm.ProducerID
		for _, rt := range rm.Topics {
			st := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				sp.Partition = p
				if e := res[txnTP(rt.Topic, p)]; e != nil {
					sp.ErrorCode = e.Code
				}
				st.Partitions = append(st.Partitions, sp)
			}
			sm.Topics = append(sm.Topics, st)
		}
		resp.Markers = append(resp.Markers, sm)
	}
	return resp, nil
}
