package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/localstore"
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

// readRemoteIsolated is readRemote, and for read_committed bounded by the
// last stable offset with the aborted transactions of what it returns.
func (b *Broker) readRemoteIsolated(deadline time.Time, p *partition.Partition, offset int64, maxBytes int, committed bool) ([]byte, []kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	if !committed {
		data, err := b.readRemote(deadline, p, offset, maxBytes)
		return data, nil, err
	}
	ctx, cancel := context.WithDeadline(b.ctx, deadline)
	defer cancel()
	select {
	case b.remoteReads <- struct{}{}:
		defer func() { <-b.remoteReads }()
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	data, err := p.ReadRemoteCommitted(ctx, offset, maxBytes)
	if err != nil || len(data) == 0 {
		return data, nil, err
	}
	aborted, err := abortedFor(ctx, p, offset, data)
	return data, aborted, err
}

// localAborted is the aborted-transaction list for a local read_committed
// fetch that returned sl.
func localAborted(p *partition.Partition, offset int64, sl localstore.Slice) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	list, err := p.AbortedTransactions(offset, sl.LastOffset+1)
	return abortedList(list), err
}

// abortedFor lists the aborted transactions overlapping the batches in data
// (read from offset).
func abortedFor(ctx context.Context, p *partition.Partition, offset int64, data []byte) ([]kmsg.FetchResponseTopicPartitionAbortedTransaction, error) {
	upper := offset
	for pos := 0; pos+localstore.BatchHeaderSize <= len(data); {
		h, err := localstore.ParseBatchHeader(data[pos:])
		if err != nil {
			break
		}
		upper = h.LastOffset() + 1
		pos += h.Size()
	}
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
