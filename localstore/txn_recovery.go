package localstore

// Loading, reconciling and repairing segments' transaction indexes. The
// index cannot be rebuilt from its own segment: an entry needs the
// producer's first offset (possibly in an earlier segment) and the LSO at
// the abort (every producer's ongoing transaction). So a rebuild replays
// producer state from a snapshot or from the first local segment.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// reconcileTxnIndex sets the transaction index of segment s, just replayed
// from offset from, to its durable entries below from plus the entries
// the replay regenerated, rewriting the file when that differs from it.
// The entries kept below from are checked against the segment's own
// batches there (early, see earlyAborts). When the file may have lost or
// garbled an entry below from, the index is rebuilt from a replay of the
// whole log instead. Callers: Open (nothing runs concurrently) and TruncateTo (holding
// writeMu; readers only look below the new end).
func (l *Log) reconcileTxnIndex(s *segment, from int64, regenerated []AbortedTxn, early *earlyAborts) error {
	s.idx.RLock()
	loaded, existing := s.idx.txnLoaded, s.idx.aborted
	s.idx.RUnlock()
	damaged := false
	if !loaded {
		b, err := os.ReadFile(s.txnIndexPath())
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("localstore: %w", err)
		}
		var derr error
		existing, derr = decodeTxnEntries(b, s.base, s.next)
		if derr != nil {
			damaged = true
			if damageMatters(b, len(existing), s.base, from) {
				l.logger.Error("localstore: transaction index damaged below the replay start; rebuilding it from the whole log", "segment", s.txnIndexPath(), "err", derr)
				entries, err := l.repairTxnIndex(s)
				if err != nil {
					return err
				}
				return l.setTxnIndex(s, entries, true)
			}
			// Only entries the replay regenerates are lost: a torn tail,
			// or markers truncated with the log.
			l.logger.Warn("localstore: dropping transaction index entries past the recovered log", "segment", s.txnIndexPath(), "kept", len(existing), "reason", derr)
		}
	}
	merged := make([]AbortedTxn, 0, len(existing)+len(regenerated))
	for _, e := range existing {
		if e.LastOffset < from {
			merged = append(merged, e)
		}
	}
	if why := early.check(merged, s.base); why != "" {
		l.logger.Error("localstore: transaction index disagrees with its segment; rebuilding it from the whole log", "segment", s.txnIndexPath(), "reason", why)
		entries, err := l.repairTxnIndex(s)
		if err != nil {
			return err
		}
		return l.setTxnIndex(s, entries, true)
	}
	merged = append(merged, regenerated...)
	if !damaged && equalAborted(merged, existing) {
		s.idx.Lock()
		if !s.idx.txnLoaded {
			s.idx.aborted, s.idx.flushedAborted = merged, len(merged)
			s.idx.txnLoaded = true
		}
		s.idx.Unlock()
		return nil
	}
	if loaded || len(existing) > 0 || len(regenerated) > 0 {
		l.logger.Info("localstore: rebuilt transaction index", "segment", s.txnIndexPath(), "replay_from", from, "entries", len(merged), "before", len(existing))
	}
	return l.setTxnIndex(s, merged, true)
}

// damageMatters reports whether a transaction index of the segment
// starting at base, which stops decoding after good entries, may have lost
// entries below from (the only ones the replay does not regenerate).
// Entries are in marker order, so if the first bad entry is whole, of
// version 0 and has its marker at or past from, everything it hides would
// be regenerated: that is the common case of a log tail cut by recovery.
func damageMatters(b []byte, good int, base, from int64) bool {
	if from <= base {
		return false
	}
	p := good * txnIndexEntrySize
	if len(b)-p < txnIndexEntrySize || int16(binary.BigEndian.Uint16(b[p:])) != txnIndexVersion {
		return true
	}
	return int64(binary.BigEndian.Uint64(b[p+18:])) < from
}

// earlyAborts is what a segment's batches below the replay start say about
// the index entries there, from a replay of the segment alone (an empty
// producer state at its base): which offsets are abort markers and of
// which producer, and, for a producer whose transaction has data in the
// segment, the entry's first offset and last stable offset. Those are
// exact unless a transaction began in an earlier segment, in which case
// the true value lies below the segment's base. A marker whose
// transaction's data all lie in earlier segments cannot be told from an
// empty transaction's; for those the file is trusted.
type earlyAborts struct {
	local   txnTracker
	markers map[int64]earlyMarker
}

type earlyMarker struct {
	producerID int64
	required   bool  // the transaction has data in this segment
	first, lso int64 // as seen from this segment alone
}

func (e *earlyAborts) observe(h BatchHeader, m *controlMarker) {
	if e.markers == nil {
		e.local, e.markers = newTxnTracker(), map[int64]earlyMarker{}
	}
	if h.IsControl() && m != nil && !m.empty && !m.commit && h.ProducerID >= 0 {
		first, open := e.local.ongoing[h.ProducerID]
		e.markers[h.BaseOffset] = earlyMarker{producerID: h.ProducerID, required: open, first: first,
			lso: e.local.firstOfOthers(h.ProducerID, h.BaseOffset+1)}
	}
	e.local.observe(h, m)
	e.local.unreplicated = nil // not needed here
}

// check returns why kept (the entries below the replay start of the
// segment at base) cannot be right, or "".
func (e *earlyAborts) check(kept []AbortedTxn, base int64) string {
	have := make(map[int64]bool, len(kept))
	for _, a := range kept {
		m, ok := e.markers[a.LastOffset]
		switch {
		case !ok:
			return fmt.Sprintf("entry %+v names no abort marker", a)
		case m.producerID != a.ProducerID:
			return fmt.Sprintf("entry %+v names the marker of producer %d", a, m.producerID)
		case a.FirstOffset >= base && (!m.required || a.FirstOffset != m.first):
			return fmt.Sprintf("entry %+v: the transaction's data in the segment begins at %d", a, m.first)
		case a.LastStableOffset >= base && a.LastStableOffset != m.lso:
			return fmt.Sprintf("entry %+v: the last stable offset at the abort was %d", a, m.lso)
		}
		have[a.LastOffset] = true
	}
	for off, m := range e.markers {
		if m.required && !have[off] {
			return fmt.Sprintf("no entry for the abort marker at offset %d", off)
		}
	}
	return ""
}

// setTxnIndex replaces s's entries in memory and in its file.
func (l *Log) setTxnIndex(s *segment, entries []AbortedTxn, sync bool) error {
	if err := writeTxnIndexFile(s.txnIndexPath(), entries, sync); err != nil {
		return err
	}
	s.idx.Lock()
	s.idx.aborted, s.idx.flushedAborted = entries, len(entries)
	s.idx.txnLoaded = true
	s.idx.Unlock()
	return nil
}

// loadTxnIndex loads a sealed segment's transaction index on first use
// (segments below the recovery point are not read at Open). The file was
// fsynced before the recovery point passed it, so damage is media damage:
// it is logged and the index rebuilt from a replay of the log, as Kafka
// recovers a segment whose index fails its sanity check. next is the
// segment's end offset when it was pinned.
func (l *Log) loadTxnIndex(s *segment, next int64) error {
	s.idx.RLock()
	loaded := s.idx.txnLoaded
	s.idx.RUnlock()
	if loaded {
		return nil
	}
	entries, err := readTxnIndexFile(s.txnIndexPath(), s.base, next)
	if err != nil {
		if !errors.Is(err, ErrCorruption) {
			return err
		}
		l.logger.Error("localstore: corrupt transaction index; rebuilding it from the log", "segment", s.txnIndexPath(), "err", err)
		if entries, err = l.repairTxnIndex(s); err != nil {
			return err
		}
		// Written under Log.mu (shared) so that a cleaner swap, which
		// replaces files under Log.mu held exclusively, cannot slip between
		// the check and the write. Not fsynced: a crash leaves the damaged
		// file, repaired again on next use.
		l.mu.RLock()
		if !s.removed.Load() {
			if werr := writeTxnIndexFile(s.txnIndexPath(), entries, false); werr != nil {
				l.logger.Warn("localstore: write repaired transaction index", "segment", s.txnIndexPath(), "err", werr)
			}
		}
		l.mu.RUnlock()
	}
	s.idx.Lock()
	if !s.idx.txnLoaded {
		s.idx.aborted, s.idx.flushedAborted = entries, len(entries)
		s.idx.txnLoaded = true
	}
	s.idx.Unlock()
	return nil
}

// repairTxnIndex computes target's transaction index by replaying every
// local segment up to and including it from an empty producer state.
// Transactions that began below the local log start are seen from their
// first retained batch, which is all a read_committed fetch of local data
// needs. Must not be called with any segment's idx lock held.
func (l *Log) repairTxnIndex(target *segment) ([]AbortedTxn, error) {
	l.mu.RLock()
	var segs []pinnedSegment
	found := false
	for _, s := range l.mu.segments {
		s.pin()
		segs = append(segs, pinnedSegment{seg: s, size: s.size, next: s.next, sealed: s.sealed})
		if s == target {
			found = true
			break
		}
	}
	l.mu.RUnlock()
	defer unpinAll(segs)
	if !found {
		// Gone meanwhile (retention, cleaner): nobody reads it any more.
		return nil, nil
	}
	state := newProducerState(nil)
	var out []AbortedTxn
	last := len(segs) - 1
	_, err := replayBatches(segs, math.MinInt64, &state, func(i int, a AbortedTxn) {
		if i == last {
			out = append(out, a)
		}
	}, nil)
	return out, err
}
