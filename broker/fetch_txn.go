package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// Fetch with isolation_level=read_committed (KIP-98): a consumer reads only
// below the partition's last stable offset, and the response lists the
// aborted transactions overlapping the returned records (producer id and
// first offset, Kafka's collectAbortedTransactions) so the consumer drops
// their records. Local reads use the segments' .txnindex; reads from the
// bucket use the transaction index tiering bundles with each segment.
// read_uncommitted reads are unchanged, and replica fetches never use this.

// readCommitted reports whether a consumer fetch asks for read_committed.
func readCommitted(req *kmsg.FetchRequest, fol *fetchingFollower) bool {
	return fol == nil && req.IsolationLevel == 1
}

// readLocalIsolated is ReadLocal, bounded by the last stable offset for
// read_committed.
func readLocalIsolated(p *partition.Partition, offset int64, maxBytes int, minOne, committed bool) (localstore.Slice, error) {
	if committed {
		return p.ReadLocalCommitted(offset, maxBytes, minOne)
	}
	return p.ReadLocal(offset, maxBytes, minOne)
}

// localAborted is the aborted-transaction list for a local read_committed
// fetch that returned sl.
func localAborted(p *partition.Partition, offset int64, sl localstore.Slice) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	list, err := p.AbortedTransactions(offset, sl.LastOffset+1)
	return abortedList(list), err
}

// abortedFor lists the aborted transactions overlapping the remote records
// recs (read from offset).
func abortedFor(ctx context.Context, p *partition.Partition, offset int64, recs tiering.Records) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	upper := offset
	recs.Batches(func(h localstore.BatchHeader, _ []byte) bool { upper = h.LastOffset() + 1; return true })
	list, err := p.AbortedTransactionsFrom(ctx, offset, upper)
	return abortedList(list), err
}

func abortedList(list []localstore.AbortedTxn) []kmsg.FetchResponseTopicPartitionAbortedTransaction {
	if len(list) == 0 {
		return nil
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, len(list))
	for i, a := range list {
		out[i] = kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset}
	}
	return out
}
