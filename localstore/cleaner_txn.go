package localstore

// How the log cleaner treats transactions, after Kafka's LogCleaner and
// CleanedTransactionMetadata:
//
//   - Data of an aborted transaction is discarded (its keys never enter the
//     key map), except that a producer's last batch stays as an empty batch
//     so its sequence and epoch survive.
//   - Data of a committed transaction is compacted like any other data.
//   - An abort marker stays while the pass still saw data of its
//     transaction (the cleaned segment's .txnindex then keeps its entry);
//     a commit marker stays while data of its transaction remains. Once
//     nothing of the transaction is left before it, the marker goes after
//     delete.retention.ms, measured like tombstones (tombstoneExpired; Kafka
//     stamps a delete horizon in the batch instead, KIP-534). A producer's
//     last marker stays while it is the producer's last word (its epoch).
//   - Where Strata differs: Kafka never cleans at or above the first
//     unstable offset. Strata cleans sealed segments below the high
//     watermark even when a transaction is still open there, but copies
//     that transaction's batches untouched and keeps their keys out of the
//     map, so an undecided write can never remove committed data and is
//     never removed itself. (This keeps compaction going past a hung
//     transaction until its timeout.) Transactions decided by a marker at
//     or above the high watermark do bound the pass, as in Kafka: the
//     marker might not survive a leader change.

import "sort"

// cleanerTxns follows transactions through one pass, in offset order.
type cleanerTxns struct {
	aborted []AbortedTxn // overlapping the pass, by first offset
	next    int          // aborted[next:] not yet reached
	// ongoingAborted: producers inside a transaction known to be aborted.
	ongoingAborted map[int64]*abortedInPass
	// ongoingCommitted: producers inside a transaction not in the aborted
	// list, hence committed (its marker is in the log, or the transaction
	// is undecided and handled by undecided first).
	ongoingCommitted map[int64]bool
	// undecided: producers with a transaction still open when the pass
	// started, by its first offset.
	undecided map[int64]int64
	// kept collects the index entries of abort markers kept in the
	// current group, for the cleaned segment's .txnindex.
	kept []AbortedTxn
}

type abortedInPass struct {
	txn       AbortedTxn
	seenBatch bool
}

func newCleanerTxns(aborted []AbortedTxn, undecided map[int64]int64) *cleanerTxns {
	a := append([]AbortedTxn(nil), aborted...)
	sort.SliceStable(a, func(i, j int) bool { return a[i].FirstOffset < a[j].FirstOffset })
	return &cleanerTxns{aborted: a, ongoingAborted: map[int64]*abortedInPass{}, ongoingCommitted: map[int64]bool{}, undecided: undecided}
}

// consumeUpTo enters every aborted transaction that has begun by offset.
func (c *cleanerTxns) consumeUpTo(offset int64) {
	for c.next < len(c.aborted) && c.aborted[c.next].FirstOffset <= offset {
		a := c.aborted[c.next]
		c.next++
		if _, ok := c.ongoingAborted[a.ProducerID]; !ok {
			c.ongoingAborted[a.ProducerID] = &abortedInPass{txn: a}
		}
	}
}

// batchTxnState is what a data batch belongs to.
type batchTxnState int

const (
	notTransactional batchTxnState = iota
	txnCommitted
	txnAborted
	txnUndecided
)

// onData classifies a data batch (Kafka's onBatchRead, plus undecided).
func (c *cleanerTxns) onData(h BatchHeader) batchTxnState {
	c.consumeUpTo(h.LastOffset())
	if !h.IsTransactional() || h.ProducerID < 0 {
		return notTransactional
	}
	if first, ok := c.undecided[h.ProducerID]; ok && h.BaseOffset >= first {
		return txnUndecided
	}
	if a := c.ongoingAborted[h.ProducerID]; a != nil {
		a.seenBatch = true
		return txnAborted
	}
	c.ongoingCommitted[h.ProducerID] = true
	return txnCommitted
}

// onControl reports whether a control batch may be discarded once
// delete.retention.ms has passed (Kafka's onControlBatchRead). m is nil
// for a marker that does not decode, which is kept.
func (c *cleanerTxns) onControl(h BatchHeader, m *controlMarker) bool {
	c.consumeUpTo(h.LastOffset())
	switch {
	case m == nil:
		return false
	case m.empty:
		// Already emptied by an earlier pass.
		return true
	case !m.commit:
		a := c.ongoingAborted[h.ProducerID]
		delete(c.ongoingAborted, h.ProducerID)
		if a != nil && a.seenBatch {
			// Data of the transaction was in this pass: keep the marker
			// and its index entry until a pass finds none.
			c.kept = append(c.kept, a.txn)
			return false
		}
		return true
	default:
		seen := c.ongoingCommitted[h.ProducerID]
		delete(c.ongoingCommitted, h.ProducerID)
		return !seen
	}
}

// takeKept returns and resets the kept abort entries of the current group.
func (c *cleanerTxns) takeKept() []AbortedTxn {
	k := c.kept
	c.kept = nil
	return k
}

// producerLastRecord is what the cleaner must keep of an active producer
// (Kafka's LastRecord): the batch holding its last data offset, or, when
// its newest epoch wrote no data yet, its last marker of that epoch.
type producerLastRecord struct {
	lastDataOffset int64 // -1 if none
	epoch          int16
}

// isLastOfProducer reports whether batch h must survive (perhaps emptied)
// to keep its producer's state rebuildable from the log.
func isLastOfProducer(last map[int64]producerLastRecord, h BatchHeader) bool {
	if h.ProducerID < 0 {
		return false
	}
	r, ok := last[h.ProducerID]
	if !ok {
		return false
	}
	if r.lastDataOffset >= 0 {
		return h.LastOffset() == r.lastDataOffset
	}
	return h.IsControl() && h.ProducerEpoch == r.epoch
}

// decodeMarker decodes a control batch read by the cleaner, nil if it
// does not decode (kept as it is).
func decodeMarker(b []byte, h BatchHeader) *controlMarker {
	m, err := parseControlBatch(b, h)
	if err != nil {
		return nil
	}
	return &m
}
