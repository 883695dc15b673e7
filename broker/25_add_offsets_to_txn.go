package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/broker/txn"
)

// AddOffsetsToTxn, versions 0–4.
//
// A producer that will commit consumer offsets in its transaction
// (TxnOffsetCommit, KIP-98/KIP-447) first adds the group's partition of
// __consumer_offsets to the transaction, so the markers also commit or abort
// those offsets. The partition is the group's as the group coordinator
// places it (Kafka's partitionFor over the existing topic's partition count;
// __consumer_offsets is created on first need). Errors are AddPartitionsToTxn's
// for one partition: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS,
// CONCURRENT_TRANSACTIONS, INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED
// (INVALID_PRODUCER_EPOCH before v2); an empty group id is INVALID_GROUP_ID.
// v4 only says the client understands TRANSACTION_ABORTABLE (KIP-890), which
// this request never returns.
func init() { register(kmsg.AddOffsetsToTxn, 0, 4, handleAddOffsetsToTxn) }

func handleAddOffsetsToTxn(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.AddOffsetsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	b := c.b
	kerrv := func() *kerr.Error {
		if req.TransactionalID == "" {
			return kerr.InvalidRequest
		}
		if req.Group == "" {
			return kerr.InvalidGroupID
		}
		part, e := b.groups.PartitionFor(b.ctx, req.Group)
		if e != nil {
			return e
		}
		e, t := b.txn.c.AddPartitions(txn.AddPartitionsRequest{
			TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch,
			Partitions: []txn.TopicPartition{txnTP(group.OffsetsTopic, part)},
		}, b.now())
		if t != nil {
			e = b.txn.apply(t).Err
		}
		return e
	}()
	if kerrv == kerr.ProducerFenced && h.version < 2 {
		kerrv = kerr.InvalidProducerEpoch
	}
	if kerrv != nil {
		resp.ErrorCode = kerrv.Code
	}
	return resp, nil
}
