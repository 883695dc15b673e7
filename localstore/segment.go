package localstore

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// segment is one .log file with its two sparse indexes and its
// transaction index (txn_index.go).
//
// Ownership: fields marked "Log.mu" change only while the writer holds
// Log.mu exclusively and are read under Log.mu (shared). idx has its own lock
// because sealed segments load their indexes lazily, on a reader's first
// lookup, and that file I/O must not block the whole log. The file
// descriptor is reference counted so that retention or truncation can drop a
// segment while a fetch is still sending from it.
type segment struct {
	base   int64
	dir    string
	logger *slog.Logger

	// refs is 1 for the log's own reference plus one per pinned Slice or
	// in-flight operation. The descriptor closes when it drops to 0.
	refs atomic.Int32
	// removed is set once the files are unlinked; background work on a
	// pinned segment then skips writing or syncing its files.
	removed atomic.Bool

	fileMu sync.Mutex
	file   *os.File // opened on first use for sealed segments found at Open

	// Guarded by Log.mu.
	size      int64     // bytes of batches in the .log
	next      int64     // offset after the last batch (the log end offset for the active segment)
	sealed    bool      // immutable from now on
	createdAt time.Time // when this process created it, else the .log's mtime at Open
	rollBase  time.Time // when segment.ms starts counting: first append (zero while empty)
	unflushed bool      // .log bytes written since the last fsync

	idx struct {
		sync.RWMutex
		loaded bool
		indexBuilder
		flushedOffsets int // entries already in the .index file
		flushedTimes   int // entries already in the .timeindex file

		// The transaction index, loaded separately (Log.segmentAborted):
		// reading it needs the earlier segments when it must be repaired.
		txnLoaded      bool
		aborted        []AbortedTxn // in marker order
		flushedAborted int          // entries already in the .txnindex file
	}
}

func newSegment(dir string, base int64, logger *slog.Logger) *segment {
	s := &segment{base: base, dir: dir, logger: logger, next: base}
	s.refs.Store(1)
	s.idx.indexBuilder = newIndexBuilder(base)
	return s
}

func (s *segment) logPath() string       { return offsetFileName(s.dir, s.base, logSuffix) }
func (s *segment) indexPath() string     { return offsetFileName(s.dir, s.base, indexSuffix) }
func (s *segment) timeIndexPath() string { return offsetFileName(s.dir, s.base, timeIndexSuffix) }

// createSegment makes a new, empty active segment on disk. A leftover file
// with the same name (from a crash during a previous roll) is truncated.
func createSegment(dir string, base int64, now time.Time, logger *slog.Logger) (*segment, error) {
	s := newSegment(dir, base, logger)
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localstore: create segment: %w", err)
	}
	s.file = f
	for _, p := range []string{s.indexPath(), s.timeIndexPath()} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			f.Close()
			return nil, fmt.Errorf("localstore: create index: %w", err)
		}
	}
	// A leftover transaction index from an earlier life of this base goes
	// too; the file is created when the first abort is flushed.
	if err := os.Remove(s.txnIndexPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		f.Close()
		return nil, fmt.Errorf("localstore: create segment: %w", err)
	}
	s.createdAt = now
	s.idx.loaded = true
	s.idx.txnLoaded = true
	return s, nil
}

// pin takes a reference; the caller must hold Log.mu (shared) so that the
// segment is still in the log.
func (s *segment) pin() { s.refs.Add(1) }

// unpin drops a reference and closes the descriptor after the last one.
func (s *segment) unpin() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

// retire drops the log's reference, first unlinking the files if remove is
// set. Pinned readers keep the descriptor (POSIX keeps unlinked files alive
// while open), so the descriptor is opened now if a reader still needs it.
// Called with Log.mu held exclusively, so no new pins can race.
func (s *segment) retire(remove bool) {
	if remove {
		if s.refs.Load() > 1 {
			if _, err := s.openFile(); err != nil {
				s.logger.Warn("localstore: open segment before delete", "segment", s.logPath(), "err", err)
			}
		}
		s.removed.Store(true)
		for _, p := range []string{s.logPath(), s.indexPath(), s.timeIndexPath(), s.txnIndexPath()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.logger.Warn("localstore: delete segment file", "path", p, "err", err)
			}
		}
	}
	s.unpin()
}

// openFile returns the descriptor, opening it on first use. Read-write so
// that truncation can reuse it if this segment becomes active again.
func (s *segment) openFile() (*os.File, error) {
	s.fileMu.Lock()
	defer s.fileMu.Unlock()
	if s.file == nil {
		f, err := os.OpenFile(s.logPath(), os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("localstore: open segment: %w", err)
		}
		s.file = f
	}
	return s.file, nil
}

// syncFiles fsyncs the .log and its indexes (a sealed segment's durability
// point). The transaction index is synced when it exists.
func (s *segment) syncFiles() error {
	if s.removed.Load() {
		return nil
	}
	f, err := s.openFile()
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("localstore: sync %s: %w", s.logPath(), err)
	}
	for _, p := range []string{s.indexPath(), s.timeIndexPath(), s.txnIndexPath()} {
		f, err := os.OpenFile(p, os.O_RDONLY, 0)
		if err != nil {
			if s.removed.Load() {
				return nil
			}
			if p == s.txnIndexPath() && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("localstore: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("localstore: sync %s: %w", p, err)
		}
	}
	return nil
}

// indexBuilder holds a segment's in-memory indexes and applies Kafka's
// LogSegment.append indexing rule: after more than index.interval.bytes since
// the last entry, index the next batch (its last offset, its position) and,
// if the maximum timestamp grew, add a time index entry for the batch that
// carried it. The first batch of a segment is never indexed; position 0 is
// implicit.
type indexBuilder struct {
	base        int64
	offsets     []offsetEntry
	times       []timeEntry
	maxTs       int64 // largest batch maxTimestamp so far, -1 if none
	maxTsOffset int64 // last offset of the first batch carrying maxTs
	bytesSince  int64
}

func newIndexBuilder(base int64) indexBuilder {
	return indexBuilder{base: base, maxTs: -1, maxTsOffset: -1}
}

func (b *indexBuilder) add(h BatchHeader, pos int64, interval int) {
	if h.MaxTimestamp > b.maxTs {
		b.maxTs, b.maxTsOffset = h.MaxTimestamp, h.LastOffset()
	}
	if b.bytesSince > int64(interval) {
		b.offsets = append(b.offsets, offsetEntry{rel: int32(h.LastOffset() - b.base), pos: int32(pos)})
		b.addTimeEntry()
		b.bytesSince = 0
	}
	b.bytesSince += int64(h.Size())
}

// addTimeEntry appends (maxTs, maxTsOffset) if the max timestamp grew since
// the last entry (Kafka's TimeIndex.maybeAppend, whose implicit previous
// entry is timestamp -1).
func (b *indexBuilder) addTimeEntry() {
	last := int64(-1)
	if n := len(b.times); n > 0 {
		last = b.times[n-1].ts
	}
	if b.maxTs > last {
		b.times = append(b.times, timeEntry{ts: b.maxTs, rel: int32(b.maxTsOffset - b.base)})
	}
}

// seal adds the final time index entry, as Kafka does when a segment becomes
// inactive or is closed, so that the last entry always carries the segment's
// largest timestamp; lazily opened segments read it from there.
func (b *indexBuilder) seal() { b.addTimeEntry() }

// full reports whether k more batches could overflow either index. One time
// slot stays reserved for the final entry added by seal (Kafka's
// TimeIndex.isFull does the same).
func (b *indexBuilder) full(k int, segmentIndexBytes int) bool {
	return len(b.offsets)+k > segmentIndexBytes/offsetEntrySize ||
		len(b.times)+k+1 > segmentIndexBytes/timeEntrySize
}

// truncate drops entries for offsets >= next (the batches removed by a
// truncation), keeping the rest.
func (b *indexBuilder) truncate(next int64) {
	rel := next - b.base
	i := 0
	for i < len(b.offsets) && int64(b.offsets[i].rel) < rel {
		i++
	}
	b.offsets = b.offsets[:i]
	j := 0
	for j < len(b.times) && int64(b.times[j].rel) < rel {
		j++
	}
	b.times = b.times[:j]
}

// scanSegment reads batches from pos to limit, validating each (header,
// CRC-32C, offsets increasing from minOffset and fitting the segment's int32
// relative offsets), and calls fn for each. It returns the position and next
// offset after the last valid batch and, if scanning stopped early, the
// corruption error. I/O errors are returned as err with ok=false.
func scanSegment(f io.ReaderAt, base, pos, limit, minOffset int64, fn func(h BatchHeader, pos int64)) (validEnd, nextOffset int64, corrupt error, err error) {
	sc := newBatchScanner(f, pos, limit, recoverScanBufSize, true)
	nextOffset = minOffset
	for {
		h, p, e := sc.next()
		if errors.Is(e, io.EOF) {
			return p, nextOffset, nil, nil
		}
		if e == nil {
			switch {
			case h.BaseOffset < nextOffset:
				e = fmt.Errorf("%w: batch at position %d has base offset %d, expected at least %d", ErrCorruption, p, h.BaseOffset, nextOffset)
			case h.LastOffset()-base > maxRelativeOffset:
				e = fmt.Errorf("%w: batch at position %d has offset %d too far from segment base %d", ErrCorruption, p, h.LastOffset(), base)
			}
		}
		if e != nil {
			if errors.Is(e, ErrCorruption) {
				return p, nextOffset, e, nil
			}
			return p, nextOffset, nil, e
		}
		fn(h, p)
		nextOffset = h.LastOffset() + 1
	}
}

// maxRelativeOffset bounds offsets in a segment: index entries store them as
// int32 relative to the base (Kafka rolls before this overflows too).
const maxRelativeOffset = 1<<31 - 1

// ensureIndexes loads a lazily opened segment's indexes on first use,
// checking them against the segment (size, end offset) and rebuilding them
// from the .log if they are missing or fail the check. This is how Kafka
// treats segments below the recovery point: not read at startup, sanity
// checked when first touched.
func (s *segment) ensureIndexes(size, next int64, interval int) error {
	s.idx.RLock()
	loaded := s.idx.loaded
	s.idx.RUnlock()
	if loaded {
		return nil
	}
	s.idx.Lock()
	defer s.idx.Unlock()
	if s.idx.loaded {
		return nil
	}
	b := newIndexBuilder(s.base)
	err := b.load(s.indexPath(), s.timeIndexPath(), size, next-s.base)
	if err != nil {
		s.logger.Warn("localstore: rebuilding index of sealed segment", "segment", s.logPath(), "reason", err)
		f, ferr := s.openFile()
		if ferr != nil {
			return ferr
		}
		b = newIndexBuilder(s.base)
		_, _, corrupt, ioErr := scanSegment(f, s.base, 0, size, s.base, func(h BatchHeader, pos int64) { b.add(h, pos, interval) })
		if ioErr != nil {
			return ioErr
		}
		if corrupt != nil {
			// A sealed segment below the recovery point was fsynced
			// before the checkpoint moved, so this is media damage, not a
			// torn write. Index what is readable and say so loudly.
			s.logger.Error("localstore: corrupt sealed segment", "segment", s.logPath(), "err", corrupt)
		}
		b.seal()
		if !s.removed.Load() {
			if err := writeIndexFiles(s.indexPath(), s.timeIndexPath(), b.offsets, b.times, false); err != nil {
				return err
			}
		}
	}
	s.idx.indexBuilder = b
	s.idx.flushedOffsets, s.idx.flushedTimes = len(b.offsets), len(b.times)
	s.idx.loaded = true
	return nil
}

// load reads and checks both index files. The max timestamp comes from the
// last time index entry, which seal guarantees is the segment's largest.
func (b *indexBuilder) load(indexPath, timeIndexPath string, size, maxRel int64) error {
	ib, err := os.ReadFile(indexPath)
	if err != nil {
		return err
	}
	tb, err := os.ReadFile(timeIndexPath)
	if err != nil {
		return err
	}
	if b.offsets, err = decodeOffsetIndex(ib, maxRel, size); err != nil {
		return err
	}
	if b.times, err = decodeTimeIndex(tb, maxRel); err != nil {
		return err
	}
	if n := len(b.times); n > 0 {
		b.maxTs, b.maxTsOffset = b.times[n-1].ts, b.base+int64(b.times[n-1].rel)
	}
	return nil
}

// writeIndexFiles replaces both index files atomically (temp file + rename).
func writeIndexFiles(indexPath, timeIndexPath string, offsets []offsetEntry, times []timeEntry, sync bool) error {
	if err := writeFileAtomic(indexPath, appendOffsetEntries(nil, offsets), sync); err != nil {
		return err
	}
	return writeFileAtomic(timeIndexPath, appendTimeEntries(nil, times), sync)
}

// flushIndexes appends index entries not yet on disk, the transaction
// index's too. Entries are buffered in memory on the append path and
// written in bulk here (on flush, roll and close); after a crash they are
// rebuilt from the .log anyway (the transaction index by the producer-state
// replay, recovery.go). Caller holds the writer lock.
func (s *segment) flushIndexes(sync bool) error {
	s.idx.Lock()
	defer s.idx.Unlock()
	if err := appendEntriesToFile(s.indexPath(), appendOffsetEntries(nil, s.idx.offsets[s.idx.flushedOffsets:]), int64(s.idx.flushedOffsets)*offsetEntrySize, sync); err != nil {
		return err
	}
	s.idx.flushedOffsets = len(s.idx.offsets)
	if err := appendEntriesToFile(s.timeIndexPath(), appendTimeEntries(nil, s.idx.times[s.idx.flushedTimes:]), int64(s.idx.flushedTimes)*timeEntrySize, sync); err != nil {
		return err
	}
	s.idx.flushedTimes = len(s.idx.times)
	return s.flushTxnIndexLocked(sync)
}

func appendEntriesToFile(path string, b []byte, at int64, sync bool) error {
	if len(b) == 0 && !sync {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("localstore: open index: %w", err)
	}
	if _, err := f.WriteAt(b, at); err != nil {
		f.Close()
		return fmt.Errorf("localstore: write index: %w", err)
	}
	// Drop anything beyond (left by a truncation that was not yet rewritten).
	if err := f.Truncate(at + int64(len(b))); err != nil {
		f.Close()
		return fmt.Errorf("localstore: truncate index: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("localstore: sync index: %w", err)
		}
	}
	return f.Close()
}
