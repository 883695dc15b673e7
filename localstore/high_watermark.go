package localstore

// The high watermark checkpoint: replication's committed offset, which the
// log itself does not define. The broker writes it every few seconds and at
// close (Kafka's replica.high.watermark.checkpoint.interval.ms), so a replica
// that restarts and becomes leader before its followers fetch still serves
// what was committed, not nothing.

// HighWatermarkCheckpoint is the last high watermark written, capped at the
// log end offset; -1 if none was ever written.
func (l *Log) HighWatermarkCheckpoint() int64 {
	off, found, err := readOffsetCheckpoint(l.dirFile(highWatermarkFile))
	if err != nil || !found {
		return -1
	}
	return min(off, l.LogEndOffset())
}

// WriteHighWatermark durably stores hw.
func (l *Log) WriteHighWatermark(hw int64) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	return writeOffsetCheckpoint(l.dirFile(highWatermarkFile), hw)
}

// AssignLeaderEpoch records that epoch starts at the log end offset, as a
// broker does when it becomes leader before its first append (Kafka's
// maybeAssignEpochStartOffset): OffsetForLeaderEpoch then answers followers
// about the new epoch at once, and a follower that truncated to it agrees.
// An epoch not newer than the latest changes nothing.
func (l *Log) AssignLeaderEpoch(epoch int32) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if epoch <= l.mu.epochs.latest() {
		return nil
	}
	l.mu.Lock()
	changed := l.mu.epochs.assign(epoch, l.active().next)
	entries := append([]epochEntry(nil), l.mu.epochs.entries...)
	l.mu.Unlock()
	if !changed {
		return nil
	}
	return l.writeEpochCheckpoint(entries)
}
