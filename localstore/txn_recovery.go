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
// Callers: Open (nothing runs concurrently) and TruncateTo (holding
// writeMu; readers only look below the new end).
func (l *Log) reconcileTxnIndex(s *segment, from int64, regenerated []AbortedTxn) error {
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
			if damageMatters(b, len(existing), from) {
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

// damageMatters reports whether a transaction index that stops decoding
// after good entries may have lost entries below from. Entries are in
// marker order, so if the first bad entry is whole, of version 0 and has
// its marker at or past from, everything it hides would be regenerated.
func damageMatters(b []byte, good int, from int64) bool {
	p := good * txnIndexEntrySize
	if len(b)-p < txnIndexEntrySize {
		// A partial last entry: a torn append, after everything synced.
		return false
	}
	if int16(binary.BigEndian.Uint16(b[p:])) != txnIndexVersion {
		return true
	}
	return int64(binary.BigEndian.Uint64(b[p+18:])) < from
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
	})
	return out, err
}
