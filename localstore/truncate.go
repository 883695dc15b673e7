package localstore

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// TruncateTo removes every batch at or after offset: a follower's
// truncation to the leader's epoch end offset (KIP-101). Like Kafka's
// LogSegment.truncateTo, the cut is at a batch boundary: if offset falls in
// the middle of a batch the whole batch goes, and the log end offset becomes
// that batch's base offset. Indexes, producer state (reloaded from the newest
// snapshot at or below the new end, then replayed) and the epoch cache
// follow. Truncating below the log start offset empties the log and restarts
// it at offset (Kafka's truncateFullyAndStartAt).
//
// Readers must not be reading above offset: the broker only serves reads
// below the high watermark, and truncation never goes below it.
func (l *Log) TruncateTo(offset int64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	l.sealSyncs.Wait()
	if offset < 0 {
		return fmt.Errorf("%w: truncate to %d", ErrOffsetOutOfRange, offset)
	}
	cfg := l.mu.cfg
	now := cfg.Now()
	oldEnd := l.active().next
	if offset >= oldEnd {
		// Nothing to cut, but epochs that start at or after offset go, as
		// Kafka's truncateTo drops them: an election without appends must
		// not leave this replica claiming an epoch it holds no data of.
		l.mu.Lock()
		changed := l.mu.epochs.truncateFromEnd(offset)
		entries := append([]epochEntry(nil), l.mu.epochs.entries...)
		l.mu.Unlock()
		if changed {
			return l.writeEpochCheckpoint(entries)
		}
		return nil
	}
	if offset < l.mu.logStartOffset {
		return l.truncateFullyLocked(offset, now)
	}
	i := l.findSegment(offset)
	seg := l.mu.segments[i]
	if err := seg.ensureIndexes(seg.size, seg.next, cfg.IndexIntervalBytes); err != nil {
		return err
	}
	if err := l.loadTxnIndex(seg, seg.next); err != nil {
		return err
	}
	f, err := seg.openFile()
	if err != nil {
		return err
	}
	// Find the first batch that reaches offset: everything from it goes.
	seg.idx.RLock()
	pos := lookupOffset(seg.idx.offsets, offset-seg.base)
	seg.idx.RUnlock()
	cut, newEnd := seg.size, offset
	sc := newBatchScanner(f, pos, seg.size, readScanBufSize, false)
	for {
		h, p, err := sc.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("localstore: truncate: %w", err)
		}
		if h.LastOffset() >= offset {
			cut, newEnd = p, min(h.BaseOffset, offset)
			break
		}
	}
	if err := f.Truncate(cut); err != nil {
		return fmt.Errorf("localstore: truncate: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("localstore: truncate: %w", err)
	}
	// Rebuild the surviving segment's indexes and max timestamp from its data.
	b := newIndexBuilder(seg.base)
	if _, _, corrupt, err := scanSegment(f, seg.base, 0, cut, seg.base, func(h BatchHeader, p int64) { b.add(h, p, cfg.IndexIntervalBytes) }); err != nil {
		return err
	} else if corrupt != nil {
		return fmt.Errorf("localstore: truncate: %w", corrupt)
	}
	if err := writeIndexFiles(seg.indexPath(), seg.timeIndexPath(), b.offsets, b.times, false); err != nil {
		return err
	}
	// Aborts whose marker is cut go from the transaction index (Kafka's
	// TransactionIndex.truncateTo); their transactions reopen in the
	// producer-state rebuild below.
	seg.idx.RLock()
	aborted := seg.idx.aborted
	keep := 0
	for keep < len(aborted) && aborted[keep].LastOffset < newEnd {
		keep++
	}
	aborted = append([]AbortedTxn(nil), aborted[:keep]...)
	seg.idx.RUnlock()
	if err := writeTxnIndexFile(seg.txnIndexPath(), aborted, false); err != nil {
		return err
	}

	l.mu.Lock()
	doomed := l.mu.segments[i+1:]
	l.mu.segments = l.mu.segments[:i+1]
	seg.size, seg.next, seg.sealed, seg.unflushed = cut, newEnd, false, false
	if cut == 0 {
		seg.rollBase = time.Time{}
	} else if seg.rollBase.IsZero() {
		seg.rollBase = now
	}
	seg.idx.Lock()
	seg.idx.indexBuilder = b
	seg.idx.flushedOffsets, seg.idx.flushedTimes = len(b.offsets), len(b.times)
	seg.idx.loaded = true
	seg.idx.aborted, seg.idx.flushedAborted = aborted, len(aborted)
	seg.idx.Unlock()
	epochChanged := l.mu.epochs.truncateFromEnd(newEnd)
	entries := append([]epochEntry(nil), l.mu.epochs.entries...)
	l.mu.Unlock()
	for _, s := range doomed {
		s.retire(true)
	}
	l.logger.Info("localstore: truncated log", "requested_offset", offset, "old_log_end_offset", oldEnd, "new_log_end_offset", newEnd, "deleted_segments", len(doomed))
	return l.afterTruncate(newEnd, epochChanged, entries)
}

// truncateFullyLocked deletes every segment and restarts the log empty at
// offset, which becomes the log start offset.
func (l *Log) truncateFullyLocked(offset int64, now time.Time) error {
	if err := writeOffsetCheckpoint(l.dirFile(logStartOffsetFile), offset); err != nil {
		return err
	}
	l.mu.Lock()
	doomed := l.mu.segments
	l.mu.segments = nil
	l.mu.Unlock()
	for _, s := range doomed {
		s.retire(true)
	}
	seg, err := createSegment(l.dir, offset, now, l.logger)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.mu.segments = []*segment{seg}
	l.mu.logStartOffset = offset
	l.mu.epochs.entries = nil
	l.mu.Unlock()
	l.logger.Info("localstore: truncated log fully", "new_start_offset", offset, "deleted_segments", len(doomed))
	return l.afterTruncate(offset, true, nil)
}

// afterTruncate persists the epoch cache, pulls the recovery point back and
// reloads producer state for the new end.
func (l *Log) afterTruncate(newEnd int64, epochChanged bool, entries []epochEntry) error {
	if epochChanged {
		if err := l.writeEpochCheckpoint(entries); err != nil {
			return err
		}
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.rp.Lock()
	rp := l.rp.offset
	l.rp.Unlock()
	if err := l.setRecoveryPoint(min(rp, newEnd)); err != nil {
		return err
	}
	producers, err := l.rebuildProducerState(newEnd)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.mu.producers = producers
	l.mu.Unlock()
	return nil
}
