package localstore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync/atomic"
	"time"
)

// Slice is a byte range of one segment file holding whole batches, ready to
// be sent with sendfile or read with ReadAt (never through the file's shared
// position). It pins the segment: Release must be called once when done.
type Slice struct {
	File                    *os.File
	Pos                     int64
	Size                    int64
	FirstOffset, LastOffset int64 // base offset of the first batch, last offset of the last
	release                 func()
}

// Release unpins the segment. It is safe on a zero Slice and idempotent.
func (s Slice) Release() {
	if s.release != nil {
		s.release()
	}
}

func pinnedRelease(seg *segment) func() {
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			seg.unpin()
		}
	}
}

// findSegment returns the index of the segment that holds offset: the last
// one whose base is <= offset. Caller holds mu.
func (l *Log) findSegment(offset int64) int {
	segs := l.mu.segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].base > offset })
	return max(i-1, 0)
}

// Read returns whole batches from one segment starting with the batch that
// contains offset (Kafka sends the whole batch even when offset is in its
// middle; clients skip the earlier records), at most maxBytes of them, none
// starting at or after maxOffset (the caller passes the high watermark or
// last stable offset). If minOneBatch is set and the first batch is larger
// than maxBytes it is returned anyway (KIP-74), otherwise the result is
// empty. offset == LogEndOffset or >= maxOffset gives an empty Slice; offsets
// outside [LogStartOffset, LogEndOffset] give ErrOffsetOutOfRange.
func (l *Log) Read(offset int64, maxBytes int, maxOffset int64, minOneBatch bool) (Slice, error) {
	for {
		l.mu.RLock()
		if err := l.errIfClosed(); err != nil {
			l.mu.RUnlock()
			return Slice{}, err
		}
		leo, lso := l.active().next, l.mu.logStartOffset
		if offset < lso || offset > leo {
			l.mu.RUnlock()
			return Slice{}, fmt.Errorf("%w: offset %d not in [%d, %d]", ErrOffsetOutOfRange, offset, lso, leo)
		}
		maxOffset = min(maxOffset, leo)
		if offset >= maxOffset {
			l.mu.RUnlock()
			return Slice{}, nil
		}
		seg := l.mu.segments[l.findSegment(offset)]
		size, next := seg.size, seg.next
		interval := l.mu.cfg.IndexIntervalBytes
		seg.pin()
		l.mu.RUnlock()

		s, found, err := seg.read(offset, size, next, interval, maxBytes, maxOffset, minOneBatch)
		if err != nil || found {
			return s, err
		}
		// offset lies after this segment's last batch (a gap left by
		// truncation or compaction): continue in the next segment.
		offset = next
	}
}

// read finds the batch holding offset in this pinned segment and extends the
// slice over following batches within the limits. found=false (and the pin
// dropped) means no batch in the segment reaches offset. An empty result
// also drops the pin.
func (s *segment) read(offset, size, next int64, interval, maxBytes int, maxOffset int64, minOneBatch bool) (Slice, bool, error) {
	fail := func(err error) (Slice, bool, error) {
		s.unpin()
		return Slice{}, true, err
	}
	if err := s.ensureIndexes(size, next, interval); err != nil {
		return fail(err)
	}
	f, err := s.openFile()
	if err != nil {
		return fail(err)
	}
	s.idx.RLock()
	pos := lookupOffset(s.idx.offsets, offset-s.base)
	s.idx.RUnlock()
	sc := newBatchScanner(f, pos, size, readScanBufSize, false)
	var first BatchHeader
	start := int64(-1)
	for {
		h, p, err := sc.next()
		if errors.Is(err, io.EOF) {
			s.unpin()
			return Slice{}, false, nil
		}
		if err != nil {
			return fail(fmt.Errorf("localstore: read %s: %w", s.logPath(), err))
		}
		if h.LastOffset() >= offset {
			first, start = h, p
			break
		}
	}
	if first.BaseOffset >= maxOffset || (int64(first.Size()) > int64(maxBytes) && !minOneBatch) {
		s.unpin()
		return Slice{}, true, nil
	}
	end, last := start+int64(first.Size()), first.LastOffset()
	for end-start < int64(maxBytes) {
		h, p, err := sc.next()
		if err != nil {
			// EOF, or a bad batch that the next read will report.
			break
		}
		if h.BaseOffset >= maxOffset || p+int64(h.Size())-start > int64(maxBytes) {
			break
		}
		end, last = p+int64(h.Size()), h.LastOffset()
	}
	return Slice{File: f, Pos: start, Size: end - start, FirstOffset: first.BaseOffset, LastOffset: last, release: pinnedRelease(s)}, true, nil
}

// ReadBytes is Read with minOneBatch set, copied into memory (for tests,
// tiering and tools).
func (l *Log) ReadBytes(offset int64, maxBytes int, maxOffset int64) ([]byte, error) {
	s, err := l.Read(offset, maxBytes, maxOffset, true)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	b := make([]byte, s.Size)
	if s.Size == 0 {
		return b, nil
	}
	if _, err := s.File.ReadAt(b, s.Pos); err != nil {
		return nil, fmt.Errorf("localstore: read: %w", err)
	}
	return b, nil
}

// pinnedSegment is a segment with the bounds seen when it was pinned.
type pinnedSegment struct {
	seg        *segment
	size, next int64
	sealed     bool
}

// pinAll pins every segment for a read that walks the whole log.
func (l *Log) pinAll() ([]pinnedSegment, int, int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if err := l.errIfClosed(); err != nil {
		return nil, 0, 0, err
	}
	out := make([]pinnedSegment, len(l.mu.segments))
	for i, s := range l.mu.segments {
		s.pin()
		out[i] = pinnedSegment{seg: s, size: s.size, next: s.next, sealed: s.sealed}
	}
	return out, l.mu.cfg.IndexIntervalBytes, l.mu.logStartOffset, nil
}

func unpinAll(ps []pinnedSegment) {
	for _, p := range ps {
		p.seg.unpin()
	}
}

// OffsetForTimestamp serves ListOffsets by timestamp (KIP-33): the first
// batch whose max timestamp is >= ts, found by picking the segment from its
// largest timestamp, then the time index, then a scan. Strata answers at
// batch granularity: the offset is the batch's base offset (never below the
// log start offset) and the timestamp its max timestamp; Kafka goes on to
// find the exact record inside the batch. Consumers seeking by time may see
// up to one batch of earlier records. found is false when no batch qualifies.
func (l *Log) OffsetForTimestamp(ts int64) (offset int64, timestamp int64, found bool, err error) {
	segs, interval, lso, err := l.pinAll()
	if err != nil {
		return 0, 0, false, err
	}
	defer unpinAll(segs)
	for _, p := range segs {
		s := p.seg
		if p.size == 0 || p.next <= lso {
			continue
		}
		if err := s.ensureIndexes(p.size, p.next, interval); err != nil {
			return 0, 0, false, err
		}
		s.idx.RLock()
		maxTs := s.idx.maxTs
		rel := lookupTime(s.idx.times, ts)
		pos := int64(0)
		if rel >= 0 {
			pos = lookupOffset(s.idx.offsets, rel)
		}
		s.idx.RUnlock()
		if maxTs < ts {
			continue
		}
		f, err := s.openFile()
		if err != nil {
			return 0, 0, false, err
		}
		sc := newBatchScanner(f, pos, p.size, readScanBufSize, false)
		for {
			h, _, err := sc.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, 0, false, fmt.Errorf("localstore: timestamp lookup in %s: %w", s.logPath(), err)
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= lso {
				return max(h.BaseOffset, lso), h.MaxTimestamp, true, nil
			}
		}
	}
	return 0, 0, false, nil
}

// MaxTimestamp serves ListOffsets with timestamp -3 (KIP-734): the largest
// timestamp in the log and an offset for it. Kafka returns the offset of
// the record carrying it; Strata returns the last offset of the (first)
// batch whose max timestamp it is, which is in the same batch and is what
// the time index stores. (-1, -1) for an empty log.
func (l *Log) MaxTimestamp() (timestamp int64, offset int64, err error) {
	segs, interval, _, err := l.pinAll()
	if err != nil {
		return -1, -1, err
	}
	defer unpinAll(segs)
	timestamp, offset = -1, -1
	for _, p := range segs {
		if p.size == 0 {
			continue
		}
		if err := p.seg.ensureIndexes(p.size, p.next, interval); err != nil {
			return -1, -1, err
		}
		p.seg.idx.RLock()
		if p.seg.idx.maxTs > timestamp {
			timestamp, offset = p.seg.idx.maxTs, p.seg.idx.maxTsOffset
		}
		p.seg.idx.RUnlock()
	}
	return timestamp, offset, nil
}

// SegmentInfo describes one segment for retention, tiering and dump tools.
type SegmentInfo struct {
	BaseOffset   int64
	NextOffset   int64 // exclusive end: the next segment's base, or the log end offset
	Size         int64
	MaxTimestamp int64 // -1 if no batch has a timestamp
	Sealed       bool
	// CreatedAt is when this process created the segment; for segments found
	// at Open it is the .log's modification time then (file systems do not
	// portably record creation time).
	CreatedAt    time.Time
	LastModified time.Time
	Path         string // the .log file
}

// Segments lists the segments, oldest first. Sealed segments' indexes are
// loaded if needed to learn their max timestamp.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return nil
	}
	segs := make([]pinnedSegment, len(l.mu.segments))
	created := make([]time.Time, len(l.mu.segments))
	for i, s := range l.mu.segments {
		s.pin()
		segs[i] = pinnedSegment{seg: s, size: s.size, next: s.next, sealed: s.sealed}
		created[i] = s.createdAt
	}
	interval := l.mu.cfg.IndexIntervalBytes
	l.mu.RUnlock()
	defer unpinAll(segs)
	out := make([]SegmentInfo, len(segs))
	for i, p := range segs {
		s := p.seg
		info := SegmentInfo{BaseOffset: s.base, NextOffset: p.next, Size: p.size, MaxTimestamp: -1, Sealed: p.sealed, CreatedAt: created[i], Path: s.logPath()}
		if err := s.ensureIndexes(p.size, p.next, interval); err != nil {
			l.logger.Warn("localstore: segment index", "segment", s.logPath(), "err", err)
		} else {
			s.idx.RLock()
			info.MaxTimestamp = s.idx.maxTs
			s.idx.RUnlock()
		}
		if st, err := os.Stat(info.Path); err == nil {
			info.LastModified = st.ModTime()
		}
		out[i] = info
	}
	return out
}
