package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/txn"
)

// EndTxn, versions 0–4.
//
// Commits or aborts the producer's transaction (KIP-98): the coordinator
// writes PrepareCommit or PrepareAbort to __transaction_state and answers
// once that is committed — the outcome is then decided — and writes the
// markers to every partition of the transaction in the background, followed
// by CompleteCommit/CompleteAbort (txn_markers.go). Until those are written
// the id's next request gets CONCURRENT_TRANSACTIONS and the client retries.
// A retry after the transaction completed the same way succeeds; ending it
// the other way, or with no transaction, is INVALID_TXN_STATE; a stale epoch
// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before v2, KIP-588); an unknown
// id or producer id INVALID_PRODUCER_ID_MAPPING.
//
// v5 (KIP-890 part 2: an epoch bump at every commit) is not advertised:
// Strata's coordinator speaks transaction version 0/1.
func init() { register(kmsg.EndTxn, 0, 4, handleEndTxn) }

func handleEndTxn(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.EndTxnRequest)
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	b := c.b
	kerrv, t := b.txn.c.EndTxn(txn.EndTxnRequest{
		TransactionalID: req.TransactionalID, ProducerID: req.ProducerID, ProducerEpoch: req.ProducerEpoch, Commit: req.Commit,
	}, b.now())
	if t != nil {
		kerrv = b.txn.apply(t).Err
	}
	if kerrv == kerr.ProducerFenced && h.version < 2 {
		kerrv = kerr.InvalidProducerEpoch
	}
	if kerrv != nil {
		resp.ErrorCode = kerrv.Code
	}
	return resp, nil
}
