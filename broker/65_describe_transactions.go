package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeTransactions, version 0 (KIP-664).
//
// The coordinator's view of each transactional id: state (Kafka's names:
// Empty, Ongoing, PrepareCommit, …), producer id and epoch, timeout, when
// the transaction started (-1 if none) and its partitions.
// TRANSACTIONAL_ID_NOT_FOUND for an unknown id, NOT_COORDINATOR on a broker
// that does not coordinate it, COORDINATOR_LOAD_IN_PROGRESS while its
// partition loads.
func init() { register(kmsg.DescribeTransactions, 0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.DescribeTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		m, kerrv := c.b.txn.c.Describe(id)
		if kerrv != nil {
			st.ErrorCode = kerrv.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State, st.TimeoutMillis, st.StartTimestamp = m.State.String(), m.TimeoutMs, m.StartTimeMs
		st.ProducerID, st.ProducerEpoch = m.ProducerID, m.ProducerEpoch
		for _, tp := range m.Partitions {
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
			}
			t := &st.Topics[len(st.Topics)-1]
			t.Partitions = append(t.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
