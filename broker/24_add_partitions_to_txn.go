package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/txn"
)

// AddPartitionsToTxn, versions 0–4.
//
// A transactional producer adds each partition to its transaction before
// writing to it (KIP-98); the first one starts the transaction and its
// timeout. The coordinator answers once the new state is written to
// __transaction_state. Every partition must exist (UNKNOWN_TOPIC_OR_PARTITION)
// and, from clients (v0–v3), must not be an internal topic
// (TOPIC_AUTHORIZATION_FAILED, as Kafka's authorizer filters them); if any
// fails, the others get OPERATION_NOT_ATTEMPTED and nothing is added.
// Errors otherwise apply to every partition: NOT_COORDINATOR,
// COORDINATOR_LOAD_IN_PROGRESS, CONCURRENT_TRANSACTIONS (an end or another
// change still being written), INVALID_PRODUCER_ID_MAPPING, PRODUCER_FENCED
// (INVALID_PRODUCER_EPOCH before v2, KIP-588).
//
// v4 (KIP-890 part 1) batches several transactions and is what brokers
// send: with verify_only a partition leader asks, before accepting a
// transactional batch, whether the partition is already in the transaction
// (TRANSACTION_ABORTABLE if not) and nothing is written. v5 belongs to
// KIP-890 part 2, which Strata's coordinator does not implement, and is not
// advertised.
func init() { register(kmsg.AddPartitionsToTxn, 0, 4, handleAddPartitionsToTxn) }

func handleAddPartitionsToTxn(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.AddPartitionsToTxnRequest)
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	txns := req.Transactions
	if h.version < 4 {
		one := kmsg.NewAddPartitionsToTxnRequestTransaction()
		one.TransactionalID, one.ProducerID, one.ProducerEpoch = req.TransactionalID, req.ProducerID, req.ProducerEpoch
		for _, rt := range req.Topics {
			one.Topics = append(one.Topics, kmsg.AddPartitionsToTxnRequestTransactionTopic{Topic: rt.Topic, Partitions: rt.Partitions})
		}
		txns = []kmsg.AddPartitionsToTxnRequestTransaction{one}
	}
	for _, rt := range txns {
		res := c.b.addPartitionsToTxn(rt, h.version < 4)
		st := kmsg.NewAddPartitionsToTxnResponseTransaction()
		st.TransactionalID = rt.TransactionalID
		for _, tt := range rt.Topics {
			sto := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			sto.Topic = tt.Topic
			for _, p := range tt.Partitions {
				e := res[txnTP(tt.Topic, p)]
				if e == kerr.ProducerFenced && h.version < 2 {
					e = kerr.InvalidProducerEpoch
				}
				sp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				sp.Partition = p
				if e != nil {
					sp.ErrorCode = e.Code
				}
				sto.Partitions = append(sto.Partitions, sp)
			}
			st.Topics = append(st.Topics, sto)
		}
		resp.Transactions = append(resp.Transactions, st)
	}
	if h.version < 4 {
		for _, sto := range resp.Transactions[0].Topics {
			t := kmsg.NewAddPartitionsToTxnResponseTopic()
			t.Topic = sto.Topic
			for _, sp := range sto.Partitions {
				t.Partitions = append(t.Partitions, kmsg.AddPartitionsToTxnResponseTopicPartition{Partition: sp.Partition, ErrorCode: sp.ErrorCode})
			}
			resp.Topics = append(resp.Topics, t)
		}
		resp.Transactions = nil
	}
	return resp, nil
}

// addPartitionsToTxn handles one transaction of the request: the error of
// each partition (nil for success).
func (b *Broker) addPartitionsToTxn(rt kmsg.AddPartitionsToTxnRequestTransaction, fromClient bool) map[txn.TopicPartition]*kerr.Error {
	var tps []txn.TopicPartition
	for _, tt := range rt.Topics {
		for _, p := range tt.Partitions {
			tps = append(tps, txnTP(tt.Topic, p))
		}
	}
	out := make(map[txn.TopicPartition]*kerr.Error, len(tps))
	all := func(e *kerr.Error) map[txn.TopicPartition]*kerr.Error {
		for _, tp := range tps {
			out[tp] = e
		}
		return out
	}
	if rt.TransactionalID == "" {
		return all(kerr.InvalidRequest)
	}
	failed := false
	for _, tp := range tps {
		t := b.topics.get(tp.Topic)
		switch {
		case t == nil || tp.Partition < 0 || tp.Partition >= t.count():
			out[tp], failed = kerr.UnknownTopicOrPartition, true
		case fromClient && t.meta.Internal:
			out[tp], failed = kerr.TopicAuthorizationFailed, true
		}
	}
	if failed {
		for _, tp := range tps {
			if out[tp] == nil {
				out[tp] = kerr.OperationNotAttempted
			}
		}
		return out
	}
	c := b.txn.c
	if rt.VerifyOnly {
		for tp, e := range c.VerifyPartitions(rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, tps) {
			out[tp] = e
		}
		return out
	}
	kerrv, t := c.AddPartitions(txn.AddPartitionsRequest{
		TransactionalID: rt.TransactionalID, ProducerID: rt.ProducerID, ProducerEpoch: rt.ProducerEpoch, Partitions: tps,
	}, b.now())
	if t != nil {
		kerrv = b.txn.apply(t).Err
	}
	return all(kerrv)
}
