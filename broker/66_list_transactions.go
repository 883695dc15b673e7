package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/txn"
)

// ListTransactions, versions 0–1 (KIP-664; v1 adds the duration filter,
// KIP-994).
//
// The transactional ids this broker coordinates, filtered by producer id,
// state and (v1) how long the transaction has run: only those running
// longer than duration_filter_ms (-1: any). State names this broker does not
// know come back in unknown_state_filters and match nothing, as Kafka does.
// COORDINATOR_LOAD_IN_PROGRESS while a partition loads. v2's id pattern
// (KIP-1152) is not advertised.
func init() { register(kmsg.ListTransactions, 0, 1, handleListTransactions) }

func handleListTransactions(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	f := txn.ListFilter{ProducerIDs: req.ProducerIDFilters, DurationMs: -1}
	if h.version >= 1 {
		f.DurationMs = req.DurationFilterMillis
	}
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok && s != txn.Dead && s != txn.PrepareEpochFence {
			f.States = append(f.States, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	if len(req.StateFilters) > 0 && len(f.States) == 0 {
		return resp, nil // only unknown states: nothing matches
	}
	list, kerrv := c.b.txn.c.List(f, c.b.now())
	if kerrv != nil {
		resp.ErrorCode = kerrv.Code
		return resp, nil
	}
	for _, m := range list {
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = m.TransactionalID, m.ProducerID, m.State.String()
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
