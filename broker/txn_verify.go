package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/txn"
)

// KIP-890 part 1: before a partition leader appends the first transactional
// batch of a producer's transaction (or TxnOffsetCommit's batch in
// __consumer_offsets), it asks the producer's transaction coordinator whether
// the partition is in the transaction — locally when this broker is the
// coordinator, else with AddPartitionsToTxn v4 verify_only (Kafka's
// AddPartitionsToTxnManager). A partition the client never added gets
// TRANSACTION_ABORTABLE, so a late write cannot open a transaction nobody
// will end (a "hanging transaction" that would hold the LSO forever).

// verifyTxnVersion is the AddPartitionsToTxn version leaders send: v4 is
// the first with verify_only and batched transactions.
const verifyTxnVersion = 4

// verifyInTxn returns the coordinator's verdict for one partition of
// producerID's transaction, as the coordinator says it (callers map it for
// their client's version).
func (b *Broker) verifyInTxn(ctx context.Context, transactionalID string, producerID int64, producerEpoch int16, tp txn.TopicPartition) *kerr.Error {
	h := b.txn
	idx := h.c.PartitionFor(transactionalID)
	t := b.topics.get(txn.StateTopic)
	if t == nil || idx >= t.count() {
		// No coordinator has ever handed out this id's producer id.
		return kerr.CoordinatorNotAvailable
	}
	leader := t.meta.Partitions[idx].Leader
	switch {
	case leader < 0:
		return kerr.CoordinatorNotAvailable
	case leader == b.opts.NodeID:
		return h.c.VerifyPartitions(transactionalID, producerID, producerEpoch, []txn.TopicPartition{tp})[tp]
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.SetVersion(verifyTxnVersion)
	rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
	rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = transactionalID, producerID, producerEpoch, true
	tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	tt.Topic, tt.Partitions = tp.Topic, []int32{tp.Partition}
	rt.Topics = append(rt.Topics, tt)
	req.Transactions = append(req.Transactions, rt)
	resp, err := b.peers.do(ctx, leader, req)
	if err != nil {
		// Kafka's NETWORK_EXCEPTION, which callers turn into a retriable
		// error for the client.
		return kerr.NetworkException
	}
	r := resp.(*kmsg.AddPartitionsToTxnResponse)
	if r.ErrorCode != 0 {
		return kerrOrNil(r.ErrorCode)
	}
	for _, st := range r.Transactions {
		if st.TransactionalID != transactionalID {
			continue
		}
		for _, sto := range st.Topics {
			for _, sp := range sto.Partitions {
				if sto.Topic == tp.Topic && sp.Partition == tp.Partition {
					return kerrOrNil(sp.ErrorCode)
				}
			}
		}
	}
	return kerr.NetworkException // the answer left the partition out
}

// produceVerifyError maps a verification verdict to what a Produce client
// gets (Kafka's ReplicaManager and AddPartitionsToTxnManager): retriable
// coordinator trouble becomes NOT_ENOUGH_REPLICAS (retried without a
// metadata refresh), PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, and
// TRANSACTION_ABORTABLE is INVALID_TXN_STATE before Produce v11.
func produceVerifyError(e *kerr.Error, version int16) *kerr.Error {
	switch e {
	case nil:
		return nil
	case kerr.ConcurrentTransactions, kerr.NetworkException, kerr.CoordinatorLoadInProgress, kerr.CoordinatorNotAvailable, kerr.NotCoordinator:
		return kerr.NotEnoughReplicas
	case kerr.ProducerFenced:
		return kerr.InvalidProducerEpoch
	case kerr.TransactionAbortable:
		if version < 11 {
			return kerr.InvalidTxnState
		}
	}
	return e
}

// offsetCommitVerifyError maps a verdict for TxnOffsetCommit (Kafka's
// maybeConvertOffsetCommitError and the AddPartitionsToTxnManager
// mapping): a lost connection is COORDINATOR_LOAD_IN_PROGRESS (retried
// without a coordinator lookup), PRODUCER_FENCED INVALID_PRODUCER_EPOCH,
// TRANSACTION_ABORTABLE INVALID_TXN_STATE before v4.
func offsetCommitVerifyError(e *kerr.Error, version int16) *kerr.Error {
	switch e {
	case nil:
		return nil
	case kerr.NetworkException:
		return kerr.CoordinatorLoadInProgress
	case kerr.ProducerFenced:
		return kerr.InvalidProducerEpoch
	case kerr.TransactionAbortable:
		if version < 4 {
			return kerr.InvalidTxnState
		}
	}
	return e
}
