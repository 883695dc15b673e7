package localstore

// What the broker asks the log about transactions (KIP-98): the last
// stable offset that bounds read_committed fetches, and the aborted
// transactions a read_committed fetch response lists.

// FirstUnstableOffset is the first offset of the earliest ongoing
// transaction, -1 if none (Kafka's firstUndecidedOffset). It is a field
// read: the fetch path may call it per partition per request.
func (l *Log) FirstUnstableOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.producers.txns.firstUndecided
}

// LastStableOffset is Kafka's LSO for the given high watermark: the high
// watermark, or the first offset of the earliest transaction that is
// still undecided, or decided by a marker at or above the high watermark
// (not yet replicated: a new leader might not have it), whichever is
// smaller (Kafka's ProducerStateManager.firstUnstableOffset). A
// read_committed fetch returns nothing at or above it, and ListOffsets
// with isolation level READ_COMMITTED answers it as the latest offset.
//
// Passing the high watermark also lets the log forget transactions whose
// markers it has passed (Kafka's onHighWatermarkUpdated), so callers pass
// the current one and never a smaller value than before. On a single node
// the high watermark is the log end offset and the result is
// min(FirstUnstableOffset, log end).
func (l *Log) LastStableOffset(highWatermark int64) int64 {
	for {
		old := l.highWatermark.Load()
		if highWatermark <= old || l.highWatermark.CompareAndSwap(old, highWatermark) {
			break
		}
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.producers.txns.lastStableOffset(highWatermark)
}

// AbortedTransactions returns the aborted transactions that overlap the
// fetch range [startOffset, upperBoundOffset): those whose abort marker is
// at or after startOffset and whose first offset is before
// upperBoundOffset, in marker order. A read_committed Fetch response lists
// them (producer id, first offset) so the consumer skips those records;
// upperBoundOffset is the offset after the last batch returned (or the
// last stable offset).
//
// As Kafka's LocalLog.collectAbortedTransactions: the search starts at the
// segment holding startOffset and goes on through later segments, because
// a transaction's marker may be segments after its data, until an entry's
// last stable offset reaches upperBoundOffset (no later marker can close a
// transaction that started before it) or the log ends. Indexes of sealed
// segments are loaded on first use and kept in memory, so a search is a
// walk over memory.
func (l *Log) AbortedTransactions(startOffset, upperBoundOffset int64) ([]AbortedTxn, error) {
	var out []AbortedTxn
	if upperBoundOffset <= startOffset {
		return nil, nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.errIfClosed(); err != nil {
		return nil, err
	}
	for i := l.findSegment(startOffset); i < len(l.mu.segments); i++ {
		s := l.mu.segments[i]
		s.idx.RLock()
		loaded := s.idx.txnLoaded
		if loaded {
			var complete bool
			out, complete = CollectAbortedTxns(out, s.idx.aborted, startOffset, upperBoundOffset)
			s.idx.RUnlock()
			if complete {
				return out, nil
			}
			continue
		}
		s.idx.RUnlock()
		// Load it without holding the log lock (file I/O, perhaps a
		// repair that reads earlier segments), then pick up where we were.
		base, next := s.base, s.next
		s.pin()
		l.mu.RUnlock()
		err := l.loadTxnIndex(s, next)
		s.unpin()
		l.mu.RLock()
		if err != nil {
			return nil, err
		}
		if err := l.errIfClosed(); err != nil {
			return nil, err
		}
		// The list may have changed meanwhile (retention, truncation, a
		// cleaner swap): go on with the segment now at base, or the first
		// one after it, without repeating earlier segments' entries.
		j := l.findSegment(base)
		if l.mu.segments[j].base < base {
			j++
		}
		i = j - 1
	}
	return out, nil
}
