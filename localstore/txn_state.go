package localstore

// Transaction bookkeeping of one partition log, after Kafka's
// ProducerStateManager (ongoingTxns, unreplicatedTxns, lastStableOffset):
// a pure state machine fed with every appended batch, live and during
// replay, so both build the same state.

import "sort"

// txnTracker follows the transactions open on this partition.
type txnTracker struct {
	// ongoing maps a producer id to the first offset of its ongoing
	// transaction. A producer has at most one.
	ongoing map[int64]int64
	// firstUndecided is the smallest first offset in ongoing, -1 if none.
	firstUndecided int64
	// unreplicated holds transactions whose marker may still be above the
	// high watermark (Kafka's unreplicatedTxns), reduced to what can
	// matter: marker offsets and first offsets both strictly increase
	// along the slice. A completed transaction whose first offset is not
	// below a later one's can never be the earliest unstable offset, so
	// adding one drops such entries from the end; a query binary-searches
	// the first marker at or above the high watermark.
	unreplicated []completedTxn
	// highWatermark is the largest high watermark a reader passed to
	// LastStableOffset; the writer drops unreplicated entries below it.
	highWatermark int64
}

type completedTxn struct{ firstOffset, markerOffset int64 }

func newTxnTracker() txnTracker {
	return txnTracker{ongoing: map[int64]int64{}, firstUndecided: -1}
}

// clone copies what observe needs to compute index entries: the ongoing
// transactions (a handful), not the unreplicated history.
func (t *txnTracker) clone() txnTracker {
	c := txnTracker{ongoing: make(map[int64]int64, len(t.ongoing)), firstUndecided: t.firstUndecided}
	for pid, first := range t.ongoing {
		c.ongoing[pid] = first
	}
	return c
}

// observe applies one appended batch (m is the decoded marker of a control
// batch). It returns the transaction index entry when the batch is an
// abort marker that ends a transaction with data; a marker for a producer
// with no ongoing transaction ends nothing and writes nothing, as in
// Kafka's ProducerAppendInfo.appendEndTxnMarker.
func (t *txnTracker) observe(h BatchHeader, m *controlMarker) (AbortedTxn, bool) {
	pid := h.ProducerID
	if pid < 0 {
		return AbortedTxn{}, false
	}
	if h.IsControl() {
		if m == nil || m.empty {
			return AbortedTxn{}, false
		}
		first, ok := t.ongoing[pid]
		if !ok {
			return AbortedTxn{}, false
		}
		marker := h.BaseOffset
		lso := t.firstOfOthers(pid, marker+1)
		delete(t.ongoing, pid)
		if first == t.firstUndecided {
			t.firstUndecided = -1
			for _, f := range t.ongoing {
				if t.firstUndecided < 0 || f < t.firstUndecided {
					t.firstUndecided = f
				}
			}
		}
		t.pushCompleted(completedTxn{firstOffset: first, markerOffset: marker})
		if m.commit {
			return AbortedTxn{}, false
		}
		return AbortedTxn{ProducerID: pid, FirstOffset: first, LastOffset: marker, LastStableOffset: lso}, true
	}
	if h.IsTransactional() {
		if _, ok := t.ongoing[pid]; !ok {
			t.ongoing[pid] = h.BaseOffset
			if t.firstUndecided < 0 || h.BaseOffset < t.firstUndecided {
				t.firstUndecided = h.BaseOffset
			}
		}
	}
	return AbortedTxn{}, false
}

// firstOfOthers is the last stable offset recorded with an abort: the
// first offset of the earliest ongoing transaction of another producer,
// else def (Kafka's ProducerStateManager.lastStableOffset).
func (t *txnTracker) firstOfOthers(pid, def int64) int64 {
	lso := def
	for other, f := range t.ongoing {
		if other != pid && f < lso {
			lso = f
		}
	}
	return lso
}

func (t *txnTracker) pushCompleted(c completedTxn) {
	if c.markerOffset < t.highWatermark {
		return
	}
	n := len(t.unreplicated)
	for n > 0 && t.unreplicated[n-1].firstOffset >= c.firstOffset {
		n--
	}
	t.unreplicated = append(t.unreplicated[:n], c)
}

// pruneReplicated drops completed transactions whose marker is below the
// largest high watermark seen (Kafka's onHighWatermarkUpdated).
func (t *txnTracker) pruneReplicated() {
	k := sort.Search(len(t.unreplicated), func(i int) bool { return t.unreplicated[i].markerOffset >= t.highWatermark })
	if k > 0 {
		t.unreplicated = append(t.unreplicated[:0], t.unreplicated[k:]...)
	}
}

// lastStableOffset is Kafka's LSO for a high watermark hw: hw, or less if
// a transaction is undecided below it, or decided by a marker at or above
// hw (not yet replicated, so a new leader might not have it).
func (t *txnTracker) lastStableOffset(hw int64) int64 {
	lso := hw
	if t.firstUndecided >= 0 && t.firstUndecided < lso {
		lso = t.firstUndecided
	}
	k := sort.Search(len(t.unreplicated), func(i int) bool { return t.unreplicated[i].markerOffset >= hw })
	if k < len(t.unreplicated) && t.unreplicated[k].firstOffset < lso {
		lso = t.unreplicated[k].firstOffset
	}
	return lso
}

// producerState is the producer table with its transaction tracker: one
// value owned by Log.mu, changed only through apply.
type producerState struct {
	table producerTable
	txns  txnTracker
}

// newProducerState wraps a table (from a snapshot), rebuilding the ongoing
// transactions from its entries as Kafka's loadProducerEntry does.
func newProducerState(t producerTable) producerState {
	p := producerState{table: t, txns: newTxnTracker()}
	if p.table == nil {
		p.table = producerTable{}
	}
	for pid, e := range p.table {
		if e.CurrentTxnFirstOffset >= 0 {
			p.txns.ongoing[pid] = e.CurrentTxnFirstOffset
			if p.txns.firstUndecided < 0 || e.CurrentTxnFirstOffset < p.txns.firstUndecided {
				p.txns.firstUndecided = e.CurrentTxnFirstOffset
			}
		}
	}
	return p
}

// apply feeds one batch to both halves; see txnTracker.observe.
func (p *producerState) apply(h BatchHeader, m *controlMarker) (AbortedTxn, bool) {
	a, ok := p.txns.observe(h, m)
	p.table.apply(h, m)
	return a, ok
}

// unreplicatedBound is the first offset of the earliest transaction decided
// by a marker at or above hw, or hw: the log cleaner stays below it.
func (t *txnTracker) unreplicatedBound(hw int64) int64 {
	k := sort.Search(len(t.unreplicated), func(i int) bool { return t.unreplicated[i].markerOffset >= hw })
	if k < len(t.unreplicated) && t.unreplicated[k].firstOffset < hw {
		return t.unreplicated[k].firstOffset
	}
	return hw
}
