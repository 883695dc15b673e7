package localstore

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"
)

// Open opens (creating if needed) the partition log in dir and recovers it.
//
// After a clean shutdown (marker present) the files are trusted: only the
// active segment's index is read, plus the few batches after its last index
// entry to find the log end offset. Otherwise, like Kafka's LogLoader,
// every segment from the one holding the recovery point onwards is scanned
// and validated (header, CRC-32C, increasing offsets); the first invalid
// batch and everything after it is truncated (later segments deleted), and
// those segments' indexes are rebuilt. Segments wholly below the recovery
// point are never read here: they were fsynced before the recovery point
// moved past them, so only their .log size is taken; their indexes are
// loaded and sanity checked on first use. Producer state is the newest
// snapshot at or below the recovery point plus a replay of later batches.
func Open(dir string, cfg Config) (*Log, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("localstore: %w", err)
	}
	l := &Log{dir: dir, logger: cfg.Logger.With("log_dir", dir)}
	l.mu.cfg = cfg
	l.mu.producers = newProducerState(nil)
	if err := l.load(); err != nil {
		for _, s := range l.mu.segments {
			s.retire(false)
		}
		return nil, err
	}
	return l, nil
}

// recoveryStats is what Open found, for the log line and for tests.
type recoveryStats struct {
	clean           bool
	scannedSegments int
	truncatedBytes  int64
	deletedSegments int
}

// openStats records the last Open's work; tests use it to prove that a clean
// open scans nothing.
var openStatsHook func(recoveryStats)

func (l *Log) load() error {
	cfg := l.mu.cfg
	now := cfg.Now()
	if err := l.finishInterruptedClean(); err != nil {
		return err
	}
	dirents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	var bases []int64
	haveLog := map[int64]bool{}
	for _, de := range dirents {
		name := de.Name()
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			// An interrupted atomic write; the real file is intact.
			_ = os.Remove(l.dirFile(name))
		case strings.HasSuffix(name, logSuffix):
			if base, err := ParseSegmentBaseOffset(name); err == nil {
				bases = append(bases, base)
				haveLog[base] = true
			}
		}
	}
	for _, de := range dirents {
		name := de.Name()
		if strings.HasSuffix(name, indexSuffix) || strings.HasSuffix(name, timeIndexSuffix) || strings.HasSuffix(name, txnIndexSuffix) {
			if base, err := ParseSegmentBaseOffset(name); err == nil && !haveLog[base] {
				_ = os.Remove(l.dirFile(name))
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })

	_, statErr := os.Stat(l.dirFile(cleanShutdownFile))
	stats := recoveryStats{clean: statErr == nil}
	logStart, haveLogStart, err := readOffsetCheckpoint(l.dirFile(logStartOffsetFile))
	if err != nil {
		l.logger.Warn("localstore: ignoring unreadable log-start-offset", "err", err)
		haveLogStart = false
	}
	rp, _, err := readOffsetCheckpoint(l.dirFile(recoveryPointFile))
	if err != nil {
		l.logger.Warn("localstore: ignoring unreadable recovery-point; scanning everything", "err", err)
		rp, stats.clean = 0, false
	}
	l.rp.offset = rp
	l.loadEpochCheckpoint()

	segs := make([]*segment, 0, len(bases))
	for i, base := range bases {
		s := newSegment(l.dir, base, l.logger)
		st, err := os.Stat(s.logPath())
		if err != nil {
			return fmt.Errorf("localstore: %w", err)
		}
		s.size, s.createdAt = st.Size(), st.ModTime()
		if i+1 < len(bases) {
			s.next, s.sealed = bases[i+1], true
		}
		segs = append(segs, s)
	}
	l.mu.segments = segs

	if len(segs) > 0 {
		if stats.clean {
			if err := l.loadActiveClean(&stats); err != nil {
				return err
			}
		} else if err := l.recoverSegments(rp, &stats); err != nil {
			return err
		}
	}
	if len(l.mu.segments) == 0 {
		start := int64(0)
		if haveLogStart {
			start = logStart
		}
		s, err := createSegment(l.dir, start, now, l.logger)
		if err != nil {
			return err
		}
		l.mu.segments = []*segment{s}
	}
	first, active := l.mu.segments[0], l.active()
	active.sealed = false
	if _, err := active.openFile(); err != nil {
		return err
	}
	if !haveLogStart || logStart < first.base {
		logStart = first.base
	}
	if logStart > active.next {
		// The durable log start is beyond what survived (a torn tail after
		// DeleteRecords): offsets must never be reused, so start afresh there,
		// like Kafka's truncateFullyAndStartAt.
		l.logger.Warn("localstore: log start offset beyond recovered data; starting empty", "log_start_offset", logStart, "log_end_offset", active.next)
		for _, s := range l.mu.segments {
			s.retire(true)
		}
		s, err := createSegment(l.dir, logStart, now, l.logger)
		if err != nil {
			return err
		}
		l.mu.segments = []*segment{s}
		active = s
	}
	l.mu.logStartOffset = logStart
	active.rollBase = l.rollBaseFor(active, now)

	leo := active.next
	epochsChanged := l.mu.epochs.truncateFromEnd(leo)
	epochsChanged = l.mu.epochs.truncateFromStart(logStart) || epochsChanged
	if epochsChanged || !stats.clean {
		if err := l.writeEpochCheckpoint(l.mu.epochs.entries); err != nil {
			return err
		}
	}

	producers, err := l.rebuildProducerState(min(rp, leo))
	if err != nil {
		return err
	}
	l.mu.producers = producers
	// The active segment's transaction index takes appends in memory, so
	// it is loaded now (the replay above usually did).
	if err := l.loadTxnIndex(active, active.next); err != nil {
		return err
	}

	if !stats.clean {
		// What we scanned may only have been in the page cache of a crashed
		// process; make it durable before moving the recovery point over it.
		for _, s := range l.mu.segments {
			if s.next > rp || s == active {
				if f, err := s.openFile(); err == nil {
					if err := f.Sync(); err != nil {
						return fmt.Errorf("localstore: sync recovered segment: %w", err)
					}
				}
			}
		}
	}
	l.rp.offset = -1 // force the write below
	if err := l.setRecoveryPoint(leo); err != nil {
		return err
	}
	if stats.clean {
		if err := os.Remove(l.dirFile(cleanShutdownFile)); err != nil {
			return fmt.Errorf("localstore: remove clean-shutdown marker: %w", err)
		}
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	l.lastFlush = now
	l.logger.Info("localstore: opened log", "clean_shutdown", stats.clean, "segments", len(l.mu.segments),
		"scanned_segments", stats.scannedSegments, "truncated_bytes", stats.truncatedBytes, "deleted_segments", stats.deletedSegments,
		"log_start_offset", logStart, "log_end_offset", leo)
	if openStatsHook != nil {
		openStatsHook(stats)
	}
	return nil
}

// loadActiveClean loads the active segment's indexes after a clean shutdown
// and reads only the batches after the last offset index entry to find the
// log end offset. If the indexes fail their sanity check, the segment is
// scanned in full instead.
func (l *Log) loadActiveClean(stats *recoveryStats) error {
	cfg := l.mu.cfg
	s := l.active()
	f, err := s.openFile()
	if err != nil {
		return err
	}
	b := newIndexBuilder(s.base)
	if err := b.load(s.indexPath(), s.timeIndexPath(), s.size, -1); err != nil {
		l.logger.Warn("localstore: active segment index unusable after clean shutdown; scanning it", "err", err)
		stats.clean = false
		return l.recoverSegments(s.base, stats)
	}
	pos := int64(0)
	next := s.base
	if n := len(b.offsets); n > 0 {
		pos, next = int64(b.offsets[n-1].pos), s.base+int64(b.offsets[n-1].rel)
	}
	_, end, corrupt, err := scanSegment(f, s.base, pos, s.size, s.base, func(h BatchHeader, p int64) {
		if p == pos && len(b.offsets) > 0 {
			// The indexed batch itself: count its bytes, do not re-index.
			if h.MaxTimestamp > b.maxTs {
				b.maxTs, b.maxTsOffset = h.MaxTimestamp, h.LastOffset()
			}
			b.bytesSince = int64(h.Size())
			return
		}
		b.add(h, p, cfg.IndexIntervalBytes)
	})
	if err != nil {
		return err
	}
	if corrupt != nil || (len(b.offsets) > 0 && end <= next) {
		l.logger.Warn("localstore: active segment tail inconsistent after clean shutdown; scanning it", "err", corrupt)
		stats.clean = false
		return l.recoverSegments(s.base, stats)
	}
	s.next = end
	s.idx.indexBuilder = b
	s.idx.flushedOffsets, s.idx.flushedTimes = len(b.offsets), len(b.times)
	s.idx.loaded = true
	return nil
}

// recoverSegments validates every segment whose offsets reach past the
// recovery point, truncating at the first invalid batch and rebuilding
// indexes.
func (l *Log) recoverSegments(rp int64, stats *recoveryStats) error {
	cfg := l.mu.cfg
	segs := l.mu.segments
	start := len(segs) - 1
	for i := range segs {
		if segs[i].sealed && segs[i].next <= rp {
			continue
		}
		start = i
		break
	}
	minOffset := segs[start].base
	for i := start; i < len(segs); i++ {
		s := segs[i]
		last := i == len(segs)-1
		if s.base < minOffset {
			// Its offsets overlap the previous segment's: not a valid log
			// from here on.
			l.logger.Warn("localstore: segment overlaps previous one; deleting it and later segments", "base", s.base, "expected_at_least", minOffset)
			l.dropSegmentsFrom(i, stats)
			break
		}
		f, err := s.openFile()
		if err != nil {
			return err
		}
		stats.scannedSegments++
		b := newIndexBuilder(s.base)
		validEnd, next, corrupt, err := scanSegment(f, s.base, 0, s.size, s.base, func(h BatchHeader, p int64) {
			b.add(h, p, cfg.IndexIntervalBytes)
			l.mu.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset)
		})
		if err != nil {
			return err
		}
		if corrupt != nil {
			l.logger.Warn("localstore: truncating corrupt or torn log tail", "segment", s.logPath(), "position", validEnd,
				"dropped_bytes", s.size-validEnd, "log_end_offset", next, "reason", corrupt)
			stats.truncatedBytes += s.size - validEnd
			if err := f.Truncate(validEnd); err != nil {
				return fmt.Errorf("localstore: truncate: %w", err)
			}
			s.size = validEnd
			l.dropSegmentsFrom(i+1, stats)
			last = true
		}
		if last {
			s.next, s.sealed = next, false
		} else {
			b.seal()
			if next > s.next {
				s.next = next // overlap: caught by the next iteration
			}
		}
		if err := writeIndexFiles(s.indexPath(), s.timeIndexPath(), b.offsets, b.times, true); err != nil {
			return err
		}
		s.idx.indexBuilder = b
		s.idx.flushedOffsets, s.idx.flushedTimes = len(b.offsets), len(b.times)
		s.idx.loaded = true
		minOffset = next
		if last {
			break
		}
	}
	return nil
}

// dropSegmentsFrom deletes segments i.. (files included).
func (l *Log) dropSegmentsFrom(i int, stats *recoveryStats) {
	segs := l.mu.segments
	if i >= len(segs) {
		return
	}
	for _, s := range segs[i:] {
		stats.truncatedBytes += s.size
		stats.deletedSegments++
		s.retire(true)
	}
	l.mu.segments = segs[:i]
	if i > 0 {
		s := segs[i-1]
		s.sealed = false
	}
}

// rollBaseFor decides when segment.ms starts counting for a segment found on
// disk. The first-append time is not persisted, so, like Kafka's
// rollingBasedTimestamp, use the first batch's max timestamp (capped at
// now); an empty segment starts counting at its first append.
func (l *Log) rollBaseFor(s *segment, now time.Time) time.Time {
	if s.size == 0 {
		return time.Time{}
	}
	f, err := s.openFile()
	if err != nil {
		return now
	}
	var hdr [BatchHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return now
	}
	h, err := ParseBatchHeader(hdr[:])
	if err != nil || h.MaxTimestamp <= 0 || h.MaxTimestamp > now.UnixMilli() {
		return now
	}
	return time.UnixMilli(h.MaxTimestamp)
}

// loadEpochCheckpoint reads leader-epoch-checkpoint. A missing or corrupt
// file leaves the cache empty (logged); recovery then re-learns epochs from
// the batches it scans.
func (l *Log) loadEpochCheckpoint() {
	b, err := os.ReadFile(l.dirFile(epochCheckpointFile))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		var entries []epochEntry
		entries, err = parseEpochCheckpoint(b)
		if err == nil {
			l.mu.epochs.entries = entries
			return
		}
	}
	l.logger.Error("localstore: leader-epoch-checkpoint unusable; epochs before the recovery point are lost", "err", err)
}

// listSnapshots returns the offsets of producer snapshots, ascending.
func (l *Log) listSnapshots() []int64 {
	dirents, err := os.ReadDir(l.dir)
	if err != nil {
		return nil
	}
	var offs []int64
	for _, de := range dirents {
		if strings.HasSuffix(de.Name(), snapshotSuffix) {
			if off, err := ParseSegmentBaseOffset(de.Name()); err == nil {
				offs = append(offs, off)
			}
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	return offs
}

// writeProducerSnapshot persists the producer table as of offset (state
// after all batches below it) and keeps the two newest snapshots and the
// active segment's.
func (l *Log) writeProducerSnapshot(offset int64) error {
	l.mu.RLock()
	data := encodeProducerSnapshot(l.mu.producers.table)
	l.mu.RUnlock()
	if err := writeFileAtomic(offsetFileName(l.dir, offset, snapshotSuffix), data, true); err != nil {
		return err
	}
	// Keep the two newest, and the one at the active segment's base: a
	// replay from it regenerates the active segment's transaction index
	// whole after a crash, trusting nothing of the file.
	offs := l.listSnapshots()
	activeBase := l.active().base
	for i := 0; i < len(offs)-2; i++ {
		if offs[i] != activeBase {
			_ = os.Remove(offsetFileName(l.dir, offs[i], snapshotSuffix))
		}
	}
	return nil
}

// rebuildProducerState loads a readable snapshot at or below upTo (the one
// at the base of upTo's segment if there is one, else the newest), deletes
// snapshots beyond the log end, and replays the batches after the
// snapshot (Kafka's ProducerStateManager.truncateAndReload + replay).
//
// The replay also rebuilds the transaction index of every segment it
// reads, as Kafka's LogSegment.recover does with the producer state of the
// segment's start: entries for abort markers at or after the snapshot
// offset come from the replay; earlier ones from the file, where they are
// durable (the snapshot is at or below the recovery point, and a segment's
// .txnindex is fsynced with it). An unclean shutdown can therefore neither
// lose an abort nor keep one whose marker did not survive. A file that is
// damaged where its entries are needed is rebuilt from a replay of the
// whole log (repairTxnIndex).
func (l *Log) rebuildProducerState(upTo int64) (producerState, error) {
	leo := l.active().next
	table := producerTable{}
	from := int64(math.MinInt64)
	offs := l.listSnapshots()
	// Preferred: the snapshot at the base of the segment holding upTo, so
	// that segment's index is regenerated whole; else the newest at or
	// below upTo.
	segBase := l.mu.segments[l.findSegment(upTo)].base
	order := make([]int64, 0, len(offs)+1)
	for _, off := range offs {
		if off == segBase {
			order = append(order, off)
		}
	}
	for i := len(offs) - 1; i >= 0; i-- {
		order = append(order, offs[i])
	}
	tried := map[int64]bool{}
	for _, off := range order {
		path := offsetFileName(l.dir, off, snapshotSuffix)
		if tried[off] {
			continue
		}
		tried[off] = true
		if off > leo {
			_ = os.Remove(path)
			continue
		}
		if off > upTo || from != math.MinInt64 {
			continue
		}
		b, err := os.ReadFile(path)
		if err == nil {
			var t producerTable
			if t, err = decodeProducerSnapshot(b); err == nil {
				table, from = t, off
				continue
			}
		}
		l.logger.Warn("localstore: discarding unreadable producer snapshot", "path", path, "err", err)
		_ = os.Remove(path)
	}
	state := newProducerState(table)
	var replayed []pinnedSegment
	for _, s := range l.mu.segments {
		if s.next > from {
			replayed = append(replayed, pinnedSegment{seg: s, size: s.size, next: s.next, sealed: s.sealed})
		}
	}
	regenerated := make([][]AbortedTxn, len(replayed))
	early := make([]earlyAborts, len(replayed))
	n, err := replayBatches(replayed, from, &state, func(i int, a AbortedTxn) {
		regenerated[i] = append(regenerated[i], a)
	}, func(i int, h BatchHeader, m *controlMarker) {
		early[i].observe(h, m)
	})
	if err != nil {
		return producerState{}, err
	}
	for i, p := range replayed {
		if err := l.reconcileTxnIndex(p.seg, from, regenerated[i], &early[i]); err != nil {
			return producerState{}, err
		}
	}
	l.logger.Debug("localstore: producer state rebuilt", "snapshot", from, "replayed_batches", n, "producers", len(state.table), "ongoing_transactions", len(state.txns.ongoing))
	return state, nil
}

// replayBatches feeds every batch of segs (in offset order, with the sizes
// to read; the caller keeps them from being deleted) whose last offset is
// at or above from to p, decoding the marker of each control batch, and
// reports each transaction index entry the replay produces with its
// segment's index. Batches below from are passed to onEarly (if not nil)
// so the caller can check the index entries it keeps. It returns the
// number of batches applied.
func replayBatches(segs []pinnedSegment, from int64, p *producerState, onAbort func(i int, a AbortedTxn), onEarly func(i int, h BatchHeader, m *controlMarker)) (int, error) {
	replayed := 0
	for i, s := range segs {
		if s.size == 0 {
			continue
		}
		f, err := s.seg.openFile()
		if err != nil {
			return replayed, err
		}
		sc := newBatchScanner(f, 0, s.size, recoverScanBufSize, false)
		for {
			h, pos, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return replayed, fmt.Errorf("localstore: replay producer state: %w", err)
			}
			if h.LastOffset() < from {
				if onEarly != nil {
					var m *controlMarker
					if h.IsControl() {
						if m, err = readControlMarker(f, pos, h); err != nil {
							return replayed, err
						}
					}
					onEarly(i, h, m)
				}
				continue
			}
			var m *controlMarker
			if h.IsControl() {
				m, err = readControlMarker(f, pos, h)
				if err != nil {
					return replayed, err
				}
			}
			if a, ok := p.apply(h, m); ok {
				onAbort(i, a)
			}
			replayed++
		}
	}
	return replayed, nil
}

// readControlMarker reads and decodes the marker of the control batch at
// pos. One that does not decode (AppendBatches never writes such a batch;
// it passed its CRC, so a bug or another tool wrote it) is returned as
// nil and ends nothing, like an empty control batch.
func readControlMarker(f io.ReaderAt, pos int64, h BatchHeader) (*controlMarker, error) {
	if h.Size() > maxControlBatchSize {
		return nil, nil
	}
	b := make([]byte, h.Size())
	if _, err := f.ReadAt(b, pos); err != nil {
		return nil, fmt.Errorf("localstore: read control batch at %d: %w", pos, err)
	}
	m, err := parseControlBatch(b, h)
	if err != nil {
		return nil, nil
	}
	return &m, nil
}
