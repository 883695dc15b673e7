package localstore

import "fmt"

// Accessors the tiering package needs to copy sealed segments and to restore
// a partition from the bucket. They expose facts, not policy.

// RecoveryPoint is the offset below which everything is fsynced: a sealed
// segment whose NextOffset is at or below it is complete on disk, so its
// files may be copied elsewhere.
func (l *Log) RecoveryPoint() int64 {
	l.rp.Lock()
	defer l.rp.Unlock()
	return l.rp.offset
}

// EpochStart is one leader-epoch cache entry: from StartOffset on, batches
// were written by the leader of Epoch.
type EpochStart struct {
	Epoch       int32
	StartOffset int64
}

// EpochStarts returns the leader-epoch cache, oldest first.
func (l *Log) EpochStarts() []EpochStart {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]EpochStart, len(l.mu.epochs.entries))
	for i, e := range l.mu.epochs.entries {
		out[i] = EpochStart{Epoch: e.epoch, StartOffset: e.startOffset}
	}
	return out
}

// SegmentFiles names a segment's index files in dir.
func SegmentFiles(dir string, base int64) (log, index, timeIndex string) {
	return offsetFileName(dir, base, logSuffix), offsetFileName(dir, base, indexSuffix), offsetFileName(dir, base, timeIndexSuffix)
}

// SnapshotFile names the producer-state snapshot taken at offset (the state
// after every batch below offset), which exists for recent segment ends.
func SnapshotFile(dir string, offset int64) string {
	return offsetFileName(dir, offset, snapshotSuffix)
}

// StartAt empties the log and restarts it at offset, like Kafka's
// truncateFullyAndStartAt: a partition restored from remote storage goes on
// after the bucket's last offset.
func (l *Log) StartAt(offset int64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	l.sealSyncs.Wait()
	if err := l.truncateFullyLocked(offset, l.mu.cfg.Now()); err != nil {
		return err
	}
	return l.setRecoveryPoint(offset)
}

// WaitSealed waits until every sealed segment is fsynced, so RecoveryPoint
// covers them all. Appends wait meanwhile (they would roll behind it).
func (l *Log) WaitSealed() {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.sealSyncs.Wait()
}

// SegmentTxnIndex returns the transaction index of the sealed segment
// [base, next) (as listed by Segments) in Kafka's .txnindex layout, empty
// when the segment holds no aborted transaction, for tiering to bundle
// with the segment's other indexes; remote read_committed fetches decode
// it with DecodeTxnIndex and search it with CollectAbortedTxns. The bytes
// come from the in-memory index (loaded from the file on first use), so
// they are right even when no file exists. Only sealed segments qualify
// (the active segment's index still grows), and only while the segment is
// the one listed: a segment the cleaner merged or retention deleted
// meanwhile is an error.
func (l *Log) SegmentTxnIndex(base, next int64) ([]byte, error) {
	l.mu.RLock()
	if err := l.errIfClosed(); err != nil {
		l.mu.RUnlock()
		return nil, err
	}
	var seg *segment
	if i := l.findSegment(base); l.mu.segments[i].base == base && l.mu.segments[i].next == next && l.mu.segments[i].sealed {
		seg = l.mu.segments[i]
	}
	if seg == nil {
		l.mu.RUnlock()
		return nil, fmt.Errorf("localstore: no sealed segment [%d, %d)", base, next)
	}
	seg.pin()
	l.mu.RUnlock()
	defer seg.unpin()
	if err := l.loadTxnIndex(seg, next); err != nil {
		return nil, err
	}
	seg.idx.RLock()
	defer seg.idx.RUnlock()
	return AppendTxnIndex([]byte{}, seg.idx.aborted), nil
}
