package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/partition"
)

// TxnOffsetCommit, versions 0–4.
//
// A transactional producer commits its consumer group's offsets inside its
// transaction (KIP-98; KIP-447 adds the member id, instance id and
// generation in v3 so a zombie consumer is fenced by the group). Sent to the
// group's coordinator (NOT_COORDINATOR elsewhere). The group's
// __consumer_offsets partition must be in the producer's transaction
// (AddOffsetsToTxn first): the coordinator of the transactional id is asked
// (KIP-890 verification), and one that was not added is INVALID_TXN_STATE,
// TRANSACTION_ABORTABLE from v4. The offsets are written in a transactional
// batch and stay pending — OffsetFetch returns the previous ones, and
// UNSTABLE_OFFSET_COMMIT with require_stable — until the transaction's
// marker commits or aborts them (broker/group/txn_offsets.go). A producer
// epoch older than the partition has seen is INVALID_PRODUCER_EPOCH. v5 and
// v6 (KIP-890 part 2, topic ids) are not advertised.
func init() { register(kmsg.TxnOffsetCommit, 0, 4, handleTxnOffsetCommit) }

func handleTxnOffsetCommit(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.TxnOffsetCommitRequest)
	b := c.b
	var v *partition.Verification
	kerrv := func() *kerr.Error {
		switch {
		case req.TransactionalID == "":
			return kerr.InvalidRequest
		case req.Group == "":
			return kerr.InvalidGroupID
		}
		part, e := b.groups.PartitionFor(b.ctx, req.Group)
		if e != nil {
			return e
		}
		_, p := b.topics.partition(group.OffsetsTopic, part)
		if p == nil || !p.IsLeader() {
			return kerr.NotCoordinator
		}
		if req.ProducerID < 0 || req.ProducerEpoch < 0 {
			return kerr.InvalidProducerIDMapping
		}
		v = p.BeginVerification(req.ProducerID, req.ProducerEpoch)
		if v == nil {
			return nil
		}
		e = offsetCommitVerifyError(b.verifyInTxn(b.ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, txnTP(group.OffsetsTopic, part)), h.version)
		if e != nil {
			p.EndVerification(v)
		}
		return e
	}()
	if kerrv != nil {
		return txnOffsetCommitFailed(req, kerrv), nil
	}
	return b.groups.TxnOffsetCommit(b.ctx, req, v), nil
}

// txnOffsetCommitFailed answers every partition of req with e.
func txnOffsetCommitFailed(req *kmsg.TxnOffsetCommitRequest, e *kerr.Error) *kmsg.TxnOffsetCommitResponse {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, e.Code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
