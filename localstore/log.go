package localstore

// Lock order — acquire top to bottom, never upwards:
//
//  0. Log.cleaning  serialises log cleaner passes (cleaner.go); held across
//                   a whole pass, which takes writeMu only for each swap.
//  1. Log.writeMu   serialises every mutation: Append, AppendBatches, Roll,
//                   MaybeRoll, TruncateTo, DeleteRecordsBefore, Flush,
//                   FlushIfDue, SetConfig, Close, Delete. It may be held
//                   across file I/O (write, fsync, roll).
//  2. Log.mu        (RWMutex) the segment list, per-segment sizes and end
//                   offsets, log start offset, producer table, epoch cache,
//                   config. Fields in it change only with writeMu AND mu held
//                   exclusively, so the writer reads them without mu. mu is
//                   held exclusively only to publish in-memory changes, never
//                   across file I/O other than unlinks.
//  3. segment.idx   (RWMutex) a segment's in-memory indexes (the
//                   transaction index too); a sealed segment's first reader
//                   loads offset and time indexes from disk under it. The
//                   transaction index loads without it held (a repair may
//                   read earlier segments and take Log.mu shared, and
//                   writes the repaired file under Log.mu shared so a
//                   cleaner swap cannot interleave).
//  4. segment.fileMu a segment's lazily opened descriptor.
//
// Readers take mu shared, pick and pin segments, release mu, then read the
// file with ReadAt. Pinning (a reference count) keeps the descriptor open if
// retention or truncation drops the segment meanwhile.

import (
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Log is one partition's log on disk. See the package doc for the layout and
// the comment above for the locking.
type Log struct {
	dir    string
	logger *slog.Logger

	cleaning sync.Mutex // see the lock order above

	writeMu sync.Mutex
	// Guarded by writeMu.
	unflushedMessages int64
	lastFlush         time.Time
	lastSealSync      chan struct{} // closed when the newest background seal fsync is done

	// sealSyncs counts background fsyncs of sealed segments. Flush, Close
	// and TruncateTo wait for them (holding writeMu, which they never take).
	sealSyncs sync.WaitGroup

	// rp is the recovery point: every offset below it is fsynced, so Open
	// need not validate segments wholly below it. Persisted in
	// recovery-point. Its own lock because background seal fsyncs advance it.
	rp struct {
		sync.Mutex
		offset int64
		broken bool // a background fsync failed: never advance again
	}

	mu struct {
		sync.RWMutex
		cfg            Config
		segments       []*segment // by base offset; the last is the active segment
		logStartOffset int64
		closed         bool
		producers      producerState // idempotence and transaction state
		epochs         epochCache
	}

	// highWatermark is the largest high watermark passed to
	// LastStableOffset; readers raise it, the writer prunes transactions
	// whose markers it has passed (txn_state.go).
	highWatermark atomic.Int64
}

// AppendInfo describes one appended batch.
type AppendInfo struct {
	BaseOffset, LastOffset int64
	LogAppendTime          int64 // -1 unless the batch was stamped with LogAppendTime
	MaxTimestamp           int64
}

func (l *Log) active() *segment { return l.mu.segments[len(l.mu.segments)-1] }

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// LogStartOffset is the first offset consumers may read (Kafka's
// logStartOffset, advanced by retention and DeleteRecords).
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.logStartOffset
}

// LogEndOffset is the next offset the log will assign.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.mu.segments) == 0 {
		return -1
	}
	return l.active().next
}

// Size is the total bytes of all segments' .log files.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.mu.segments {
		n += s.size
	}
	return n
}

// SetConfig applies a runtime topic config change; it affects the next roll
// and flush decisions. Zero fields take defaults; the clock and logger are
// kept if the new config leaves them nil.
func (l *Log) SetConfig(cfg Config) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if cfg.Now == nil {
		cfg.Now = l.mu.cfg.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = l.mu.cfg.Logger
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		l.logger.Warn("localstore: ignoring invalid config", "err", err)
		return
	}
	l.mu.cfg = cfg
}

// Append appends one batch. See AppendBatches.
func (l *Log) Append(batch []byte, leaderEpoch int32, logAppendTime bool) (AppendInfo, error) {
	infos, err := l.AppendBatches([][]byte{batch}, leaderEpoch, logAppendTime)
	if err != nil {
		return AppendInfo{}, err
	}
	return infos[0], nil
}

// AppendBatches appends already validated batches as the leader (or a
// follower copying the leader's batches) of leaderEpoch. Like Kafka's
// UnifiedLog.append it assigns offsets from the log end offset by rewriting
// each baseOffset, stamps partitionLeaderEpoch, optionally stamps
// LogAppendTime (recomputing the CRC), records a new leader epoch in the
// epoch cache (durably, before the data), then writes all batches with one
// pwritev at the end of the active segment, rolling first if segment.bytes
// would be exceeded, segment.ms has passed or an index is full. A batch
// larger than segment.bytes still goes into an empty segment, as in Kafka.
// Index entries and the producer table are updated in memory; nothing is
// fsynced unless flush.messages says so.
//
// Callers serialise appends; reads may run concurrently.
func (l *Log) AppendBatches(batches [][]byte, leaderEpoch int32, logAppendTime bool) ([]AppendInfo, error) {
	return l.appendBatches(batches, appendAsLeader{epoch: leaderEpoch, logAppendTime: logAppendTime})
}

// AppendAsFollower appends batches copied from the partition's leader,
// keeping the offsets and partition leader epochs the leader gave them
// (Kafka's UnifiedLog.appendAsFollower): the first batch must start at the
// log end offset and each next one where the previous ended. Each new leader
// epoch seen is recorded in the epoch cache at its batch's base offset, so
// this replica can answer OffsetForLeaderEpoch as the leader would. The
// caller has checked each batch (ValidateBatch).
func (l *Log) AppendAsFollower(batches [][]byte) ([]AppendInfo, error) {
	return l.appendBatches(batches, appendAsFollower{})
}

// appendMode is what differs between leader and follower appends.
type appendMode interface {
	// stamp assigns (leader) or checks (follower) the batch's offset and
	// epoch; next is the offset the batch must start at. It returns the
	// LogAppendTime it stamped, -1 if none.
	stamp(b []byte, h *BatchHeader, next int64, now time.Time) (int64, error)
}

type appendAsLeader struct {
	epoch         int32
	logAppendTime bool
}

func (m appendAsLeader) stamp(b []byte, h *BatchHeader, next int64, now time.Time) (int64, error) {
	SetBaseOffset(b, next)
	SetPartitionLeaderEpoch(b, m.epoch)
	h.BaseOffset, h.PartitionLeaderEpoch = next, m.epoch
	if !m.logAppendTime {
		return -1, nil
	}
	ts := now.UnixMilli()
	SetLogAppendTime(b, ts)
	h.BaseTimestamp, h.MaxTimestamp = ts, ts
	h.Attributes |= attrTimestampType
	return ts, nil
}

type appendAsFollower struct{}

func (appendAsFollower) stamp(b []byte, h *BatchHeader, next int64, now time.Time) (int64, error) {
	if h.BaseOffset != next {
		return -1, fmt.Errorf("localstore: follower append: %w: batch at offset %d, log end is %d", ErrOffsetOutOfRange, h.BaseOffset, next)
	}
	return -1, nil
}

func (l *Log) appendBatches(batches [][]byte, mode appendMode) ([]AppendInfo, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return nil, ErrClosed
	}
	cfg := l.mu.cfg
	headers := make([]BatchHeader, len(batches))
	var markers []*controlMarker // per batch, for control batches
	var total, span int64
	var messages int64
	for i, b := range batches {
		h, err := ParseBatchHeader(b)
		if err != nil {
			return nil, fmt.Errorf("localstore: append: %w", err)
		}
		if len(b) != h.Size() {
			return nil, fmt.Errorf("localstore: append: %w: batch length field says %d bytes, have %d", ErrCorruption, h.Size(), len(b))
		}
		if h.IsControl() {
			// A marker must decode before anything is written: the log
			// ends the producer's transaction from it (Kafka's
			// EndTransactionMarker.deserialize fails the append likewise).
			m, err := parseControlBatch(b, h)
			if err != nil {
				return nil, fmt.Errorf("localstore: append: %w", err)
			}
			if markers == nil {
				markers = make([]*controlMarker, len(batches))
			}
			markers[i] = &m
		}
		headers[i] = h
		total += int64(len(b))
		span += int64(h.LastOffsetDelta) + 1
		messages += int64(h.NumRecords)
	}
	now := cfg.Now()
	if err := l.maybeRollForAppend(cfg, now, total, len(batches), span); err != nil {
		return nil, err
	}
	seg := l.active()
	if markers != nil {
		// Normally loaded at Open; appends to it happen in memory.
		if err := l.loadTxnIndex(seg, seg.next); err != nil {
			return nil, err
		}
	}

	next := seg.next
	infos := make([]AppendInfo, len(batches))
	for i, b := range batches {
		h := &headers[i]
		appendTime, err := mode.stamp(b, h, next, now)
		if err != nil {
			return nil, err
		}
		infos[i] = AppendInfo{BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(), LogAppendTime: appendTime, MaxTimestamp: h.MaxTimestamp}
		next = h.LastOffset() + 1
	}

	// Epochs first, as Kafka does (the cache must never be behind the data).
	if err := l.assignEpochs(headers); err != nil {
		return nil, err
	}

	pos := seg.size
	if err := writeBatchesAt(seg.file, batches, pos); err != nil {
		// Cut any partial write so the next append starts clean.
		if terr := seg.file.Truncate(pos); terr != nil {
			l.logger.Error("localstore: truncate after failed write", "err", terr)
		}
		return nil, fmt.Errorf("localstore: append: %w", err)
	}

	// Index entries for offsets above the published end are never consulted
	// by readers, so they can go in before the end moves.
	seg.idx.Lock()
	p := pos
	for _, h := range headers {
		seg.idx.add(h, p, cfg.IndexIntervalBytes)
		p += int64(h.Size())
	}
	seg.idx.Unlock()

	// Producer state, the transaction index entries of aborts and the new
	// log end are published together: a reader that sees an abort
	// marker's offset below the end also finds its index entry.
	l.mu.Lock()
	seg.size = p
	seg.next = next
	seg.unflushed = true
	if seg.rollBase.IsZero() {
		seg.rollBase = now
	}
	var aborted []AbortedTxn
	for i, h := range headers {
		var m *controlMarker
		if markers != nil {
			m = markers[i]
		}
		if a, ok := l.mu.producers.apply(h, m); ok {
			aborted = append(aborted, a)
		}
	}
	if len(aborted) > 0 {
		seg.idx.Lock()
		seg.idx.aborted = append(seg.idx.aborted, aborted...)
		seg.idx.Unlock()
	}
	if hw := l.highWatermark.Load(); hw > l.mu.producers.txns.highWatermark {
		l.mu.producers.txns.highWatermark = hw
		l.mu.producers.txns.pruneReplicated()
	}
	l.mu.Unlock()

	l.unflushedMessages += messages
	if cfg.FlushMessages > 0 && l.unflushedMessages >= cfg.FlushMessages {
		if err := l.flushLocked(now); err != nil {
			return infos, err
		}
	}
	return infos, nil
}

// assignEpochs records every new partition leader epoch among headers at its
// batch's base offset and persists the cache once if it changed. Callers
// hold writeMu.
func (l *Log) assignEpochs(headers []BatchHeader) error {
	changed := false
	latest := l.mu.epochs.latest()
	for _, h := range headers {
		if h.PartitionLeaderEpoch < 0 || h.PartitionLeaderEpoch == latest {
			continue
		}
		l.mu.Lock()
		if l.mu.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset) {
			changed = true
		}
		l.mu.Unlock()
		latest = h.PartitionLeaderEpoch
	}
	if !changed {
		return nil
	}
	l.mu.RLock()
	entries := append([]epochEntry(nil), l.mu.epochs.entries...)
	l.mu.RUnlock()
	return l.writeEpochCheckpoint(entries)
}

// maybeRollForAppend rolls before an append of total bytes in k batches
// spanning span offsets, for the reasons Kafka's UnifiedLog.maybeRoll
// checks: size, age, a full index, or relative offsets overflowing int32.
// An empty active segment never rolls.
func (l *Log) maybeRollForAppend(cfg Config, now time.Time, total int64, k int, span int64) error {
	seg := l.active()
	if seg.size == 0 {
		return nil
	}
	var reason string
	switch {
	case seg.size+total > cfg.SegmentBytes:
		reason = "segment.bytes"
	case now.Sub(seg.rollBase) >= cfg.SegmentMs:
		reason = "segment.ms"
	case seg.idx.full(k, cfg.SegmentIndexBytes):
		reason = "index full"
	case seg.next+span-1-seg.base > maxRelativeOffset:
		reason = "relative offset overflow"
	default:
		return nil
	}
	return l.rollLocked(now, reason)
}

// rollLocked seals the active segment and starts a new one at the log end
// offset. A producer snapshot named by the new base offset is written,
// keeping the last two. The sealed segment is fsynced in the background, as
// Kafka's roll schedules an asynchronous flush, so appends do not stall
// behind a large fsync; the recovery point moves past it only afterwards,
// which is what lets Open skip it next time.
func (l *Log) rollLocked(now time.Time, reason string) error {
	old := l.active()
	old.idx.Lock()
	old.idx.seal()
	old.idx.Unlock()
	if err := old.flushIndexes(false); err != nil {
		return err
	}
	seg, err := createSegment(l.dir, old.next, now, l.logger)
	if err != nil {
		return err
	}
	if err := syncDir(l.dir); err != nil {
		seg.retire(true)
		return err
	}
	l.mu.Lock()
	old.sealed = true
	old.unflushed = false
	l.mu.segments = append(l.mu.segments, seg)
	l.mu.Unlock()
	l.logger.Info("localstore: rolled segment", "reason", reason, "sealed_base", old.base, "new_base", seg.base, "sealed_bytes", old.size)

	if err := l.writeProducerSnapshot(seg.base); err != nil {
		return err
	}
	l.startSealSync(old, seg.base)
	return nil
}

// startSealSync fsyncs a just-sealed segment in the background and then
// advances the recovery point to newBase. Syncs complete in roll order (each
// waits for the previous), so the recovery point never passes an unsynced
// segment.
func (l *Log) startSealSync(seg *segment, newBase int64) {
	l.mu.RLock()
	seg.pin()
	l.mu.RUnlock()
	prev, done := l.lastSealSync, make(chan struct{})
	l.lastSealSync = done
	l.sealSyncs.Add(1)
	go func() {
		defer l.sealSyncs.Done()
		defer close(done)
		defer seg.unpin()
		if prev != nil {
			<-prev
		}
		if err := seg.syncFiles(); err != nil {
			l.logger.Error("localstore: fsync of sealed segment failed; recovery point frozen", "segment", seg.logPath(), "err", err)
			l.rp.Lock()
			l.rp.broken = true
			l.rp.Unlock()
			return
		}
		if err := l.advanceRecoveryPoint(newBase); err != nil {
			l.logger.Error("localstore: write recovery point", "err", err)
		}
	}()
}

// Roll seals the active segment now if it holds any data.
func (l *Log) Roll() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	if l.active().size == 0 {
		return nil
	}
	return l.rollLocked(l.mu.cfg.Now(), "forced")
}

// MaybeRoll rolls a non-empty active segment whose first append is older
// than segment.ms. Appends check this themselves; the broker calls it on a
// timer so idle partitions still seal (and tier) their last segment.
func (l *Log) MaybeRoll() (bool, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return false, ErrClosed
	}
	cfg := l.mu.cfg
	now := cfg.Now()
	seg := l.active()
	if seg.size == 0 || now.Sub(seg.rollBase) < cfg.SegmentMs {
		return false, nil
	}
	return true, l.rollLocked(now, "segment.ms")
}

// Flush fsyncs the active segment, writes its buffered index entries and
// moves the recovery point to the log end offset.
func (l *Log) Flush() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	return l.flushLocked(l.mu.cfg.Now())
}

// FlushIfDue flushes if flush.ms has passed since the last flush. The broker
// calls it from a ticker (Kafka's log flusher thread does the same).
func (l *Log) FlushIfDue() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return ErrClosed
	}
	cfg := l.mu.cfg
	now := cfg.Now()
	if cfg.FlushMs <= 0 || now.Sub(l.lastFlush) < cfg.FlushMs {
		return nil
	}
	return l.flushLocked(now)
}

func (l *Log) flushLocked(now time.Time) error {
	l.sealSyncs.Wait()
	seg := l.active()
	if seg.unflushed {
		if err := seg.file.Sync(); err != nil {
			return fmt.Errorf("localstore: flush: %w", err)
		}
		l.mu.Lock()
		seg.unflushed = false
		l.mu.Unlock()
	}
	if err := seg.flushIndexes(false); err != nil {
		return err
	}
	l.unflushedMessages = 0
	l.lastFlush = now
	return l.setRecoveryPoint(seg.next)
}

// setRecoveryPoint persists a new recovery point (up or down) if it changed.
// Callers hold writeMu and have waited for background seal fsyncs.
func (l *Log) setRecoveryPoint(offset int64) error {
	l.rp.Lock()
	defer l.rp.Unlock()
	if l.rp.broken && offset > l.rp.offset {
		return fmt.Errorf("localstore: an earlier fsync failed; not advancing the recovery point")
	}
	return l.writeRecoveryPointLocked(offset)
}

// advanceRecoveryPoint moves the recovery point forward only.
func (l *Log) advanceRecoveryPoint(offset int64) error {
	l.rp.Lock()
	defer l.rp.Unlock()
	if l.rp.broken || offset <= l.rp.offset {
		return nil
	}
	return l.writeRecoveryPointLocked(offset)
}

func (l *Log) writeRecoveryPointLocked(offset int64) error {
	if offset == l.rp.offset {
		return nil
	}
	if err := writeOffsetCheckpoint(l.dirFile(recoveryPointFile), offset); err != nil {
		return err
	}
	l.rp.offset = offset
	return nil
}

func (l *Log) dirFile(name string) string { return l.dir + string(os.PathSeparator) + name }

// Close flushes everything, writes a producer snapshot at the log end offset
// and the clean-shutdown marker, so the next Open trusts the files and scans
// nothing (Kafka's .kafka_cleanshutdown). Readers holding Slices keep their
// descriptors until they release them.
func (l *Log) Close() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return nil
	}
	err := l.closeLocked()
	l.sealSyncs.Wait()
	l.mu.Lock()
	l.mu.closed = true
	segs := l.mu.segments
	l.mu.segments = nil
	l.mu.Unlock()
	for _, s := range segs {
		s.retire(false)
	}
	return err
}

func (l *Log) closeLocked() error {
	seg := l.active()
	seg.idx.Lock()
	seg.idx.seal()
	seg.idx.Unlock()
	if err := seg.flushIndexes(true); err != nil {
		return err
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("localstore: close: %w", err)
	}
	l.sealSyncs.Wait()
	if err := l.writeProducerSnapshot(seg.next); err != nil {
		return err
	}
	if err := l.setRecoveryPoint(seg.next); err != nil {
		return err
	}
	return writeFileAtomic(l.dirFile(cleanShutdownFile), nil, true)
}

// Delete closes the log and removes its directory (topic deletion).
func (l *Log) Delete() error {
	l.writeMu.Lock()
	l.sealSyncs.Wait()
	l.mu.Lock()
	l.mu.closed = true
	segs := l.mu.segments
	l.mu.segments = nil
	l.mu.Unlock()
	l.writeMu.Unlock()
	for _, s := range segs {
		s.retire(true)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("localstore: delete: %w", err)
	}
	return nil
}

// DeleteRecordsBefore advances the log start offset (DeleteRecords, and the
// retention hand-off) and then deletes segments that lie wholly below it. The
// new start is made durable first, so a crash can never resurrect deleted
// records as readable. The active segment is never deleted.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.mu.closed {
		return 0, ErrClosed
	}
	if offset > l.active().next {
		return 0, fmt.Errorf("%w: delete records before %d beyond log end offset %d", ErrOffsetOutOfRange, offset, l.active().next)
	}
	if offset <= l.mu.logStartOffset {
		return l.mu.logStartOffset, nil
	}
	if err := writeOffsetCheckpoint(l.dirFile(logStartOffsetFile), offset); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.mu.logStartOffset = offset
	var doomed []*segment
	for len(l.mu.segments) > 1 && l.mu.segments[0].next <= offset {
		doomed = append(doomed, l.mu.segments[0])
		l.mu.segments = l.mu.segments[1:]
	}
	epochChanged := l.mu.epochs.truncateFromStart(offset)
	entries := append([]epochEntry(nil), l.mu.epochs.entries...)
	l.mu.Unlock()
	// Out of the list, nobody can pin them any more.
	for _, s := range doomed {
		s.retire(true)
		l.logger.Info("localstore: deleted segment below log start offset", "base", s.base, "next", s.next, "log_start_offset", offset)
	}
	if epochChanged {
		if err := l.writeEpochCheckpoint(entries); err != nil {
			return offset, err
		}
	}
	if len(doomed) > 0 {
		if err := syncDir(l.dir); err != nil {
			return offset, err
		}
	}
	return offset, nil
}

// ProducerState returns a copy of the idempotence state for producerID.
func (l *Log) ProducerState(pid int64) (ProducerEntry, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e := l.mu.producers.table[pid]
	if e == nil {
		return ProducerEntry{}, false
	}
	return e.clone(), true
}

// ProducerIDs lists the producer ids with state, in ascending order.
func (l *Log) ProducerIDs() []int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	ids := make([]int64, 0, len(l.mu.producers.table))
	for id := range l.mu.producers.table {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101/KIP-279): the
// largest epoch <= epoch and the offset where it ended (the start of the next
// higher epoch, or the log end offset for the latest); (-1, -1) if unknown.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.mu.closed {
		return -1, -1
	}
	return l.mu.epochs.endOffsetFor(epoch, l.active().next)
}

// LatestEpoch is the newest leader epoch that appended to this log, -1 if none.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mu.epochs.latest()
}

func (l *Log) writeEpochCheckpoint(entries []epochEntry) error {
	return writeFileAtomic(l.dirFile(epochCheckpointFile), encodeEpochCheckpoint(entries), true)
}

// errIfClosed is for read paths that hold mu.
func (l *Log) errIfClosed() error {
	if l.mu.closed {
		return ErrClosed
	}
	return nil
}
