package localstore

// The log cleaner (compaction, cleanup.policy=compact), after Kafka's
// LogCleaner: keep the latest record per key in sealed segments, drop
// tombstones older than delete.retention.ms, keep offsets.
//
// One pass over a log (Clean):
//
//  1. Pin the sealed segments and read their metadata (sizes, timestamps
//     from the time index, first batch timestamp, mtime); PlanClean decides
//     from that, the cleaner checkpoint and the clock.
//  2. Build the key map (key → latest offset) from the dirty section only:
//     [checkpoint, first uncleanable offset), stopping at a segment boundary
//     once the map reaches CleanerConfig.KeyMapBytes.
//  3. Rewrite every sealed segment from the start of the log to the end of
//     the mapped range, in groups merged up to segment.bytes: a record goes
//     if a later offset holds its key, a tombstone goes once its batch is
//     older than delete.retention.ms. Batches whose records all stay are
//     copied byte for byte; others are rebuilt (cleaner_records.go).
//  4. Swap each group in crash-safely (cleaner_swap.go), then store the new
//     checkpoint (the end of the mapped range).
//
// The active segment is never read or written. Appends and reads go on
// during a pass; only the swap takes the log's locks, briefly.
//
// Transactions: see cleaner_txn.go (aborted data dropped, markers after
// delete.retention.ms, undecided transactions left alone).
//
// Where Strata differs from Kafka:
//   - Records without a key are kept, in every pass, counted in
//     CleanResult.KeylessRecords and logged. Produce refuses them on a
//     compacted topic (INVALID_RECORD, as Kafka's LogValidator), so they
//     are older data: written while the topic was cleanup.policy=delete,
//     before an operator switched it to compact. Kafka's cleaner discards
//     them silently (LogCleaner.shouldRetainRecord counts them as
//     "invalid" and drops them once the cleaned range passes them); Strata
//     keeps them, since a config change should never delete records that
//     nothing supersedes. Deleting them is retention's job
//     (cleanup.policy=compact,delete) or DeleteRecords'.
//   - Tombstone age: see tombstoneExpired.
//   - A cleaned segment keeps the old batches' base and max timestamps; see
//     rebuildBatch.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// CleanResult reports one pass.
type CleanResult struct {
	Plan CleanPlan
	// Cleaned is set when segments were rewritten; CleanedUpTo is then the
	// new checkpoint (the first dirty offset of the next pass).
	Cleaned     bool
	CleanedUpTo int64

	SegmentsBefore, SegmentsAfter int // of the rewritten range
	BytesBefore, BytesAfter       int64
	RecordsRead                   int64
	RecordsRemoved                int64 // superseded by a later record with the same key
	TombstonesRemoved             int64
	KeylessRecords                int64 // kept; invalid in Kafka's compacted topics
	AbortedRecordsRemoved         int64 // data of aborted transactions
	MarkersRemoved                int64 // transaction markers past delete.retention.ms
	BatchesRewritten              int64
	BatchesRemoved                int64
	UndecodableBatches            int64 // kept as they were
}

// cleanerSegment is one pinned sealed segment during a pass.
type cleanerSegment struct {
	seg       *segment
	size      int64
	next      int64
	createdAt time.Time
	meta      CleanableSegment
}

// Clean runs one compaction pass; see the file comment. maxOffset bounds
// what may be compacted (exclusive): the broker passes the high watermark.
// Passes on one log are serialised. A pass stops at ctx's cancellation
// between batches, leaving the log as it was before the unfinished group.
func (l *Log) Clean(ctx context.Context, cfg CleanerConfig, maxOffset int64) (CleanResult, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return CleanResult{}, err
	}
	l.cleaning.Lock()
	defer l.cleaning.Unlock()

	l.mu.RLock()
	if l.mu.closed {
		l.mu.RUnlock()
		return CleanResult{}, ErrClosed
	}
	logCfg := l.mu.cfg
	logStart := l.mu.logStartOffset
	sealed := l.mu.segments[:len(l.mu.segments)-1]
	segs := make([]cleanerSegment, len(sealed))
	for i, s := range sealed {
		s.pin()
		segs[i] = cleanerSegment{seg: s, size: s.size, next: s.next, createdAt: s.createdAt}
	}
	producerLast := make(map[int64]producerLastRecord, len(l.mu.producers.table))
	undecided := map[int64]int64{}
	for id, e := range l.mu.producers.table {
		r := producerLastRecord{lastDataOffset: -1, epoch: e.Epoch}
		if n := len(e.Batches); n > 0 {
			r.lastDataOffset = e.Batches[n-1].LastOffset
		}
		producerLast[id] = r
		if e.CurrentTxnFirstOffset >= 0 {
			undecided[id] = e.CurrentTxnFirstOffset
		}
	}
	// A transaction decided by a marker at or above maxOffset (the high
	// watermark) is not stable yet: clean below its first offset only.
	maxOffset = min(maxOffset, l.mu.producers.txns.unreplicatedBound(maxOffset))
	l.mu.RUnlock()
	defer func() {
		for _, s := range segs {
			s.seg.unpin()
		}
	}()

	now := logCfg.Now()
	metas := make([]CleanableSegment, len(segs))
	for i := range segs {
		if err := l.cleanerMetadata(&segs[i], logCfg.IndexIntervalBytes); err != nil {
			return CleanResult{}, err
		}
		metas[i] = segs[i].meta
	}
	res := CleanResult{Plan: PlanClean(metas, logStart, l.readCleanerCheckpoint(), maxOffset, now, cfg)}
	if !res.Plan.Clean {
		return res, nil
	}

	keys, end, err := l.buildKeyMap(ctx, segs, res.Plan, cfg.KeyMapBytes, undecided, &res)
	if err != nil {
		return res, err
	}
	// The aborted transactions overlapping everything this pass rewrites
	// (their markers may lie beyond it, even in the active segment).
	aborted, err := l.AbortedTransactions(segs[0].seg.base, end)
	if err != nil {
		return res, err
	}
	txns := newCleanerTxns(aborted, undecided)
	var toClean []cleanerSegment
	for _, s := range segs {
		if s.next <= end {
			toClean = append(toClean, s)
		}
	}
	metas = metas[:len(toClean)]
	for _, g := range groupForCleaning(metas, logCfg.SegmentBytes) {
		group := toClean[g[0]:g[1]]
		res.SegmentsBefore += len(group)
		res.SegmentsAfter++
		for _, s := range group {
			res.BytesBefore += s.size
		}
		c, err := l.writeCleaned(ctx, group, keys, producerLast, txns, now, cfg, logCfg.IndexIntervalBytes, &res)
		if err != nil {
			return res, err
		}
		res.BytesAfter += c.seg.size
		if !c.changed && len(group) == 1 {
			// Nothing to drop: leave the segment as it is.
			l.discardCleaned(c)
			continue
		}
		old := make([]*segment, len(group))
		sizes := make([]int64, len(group))
		for i, s := range group {
			old[i], sizes[i] = s.seg, s.size
		}
		if err := l.swapInCleaned(old, sizes, c); err != nil {
			return res, err
		}
	}
	if err := l.writeCleanerCheckpoint(end); err != nil {
		return res, err
	}
	res.Cleaned, res.CleanedUpTo = true, end
	if res.KeylessRecords > 0 {
		l.logger.Warn("localstore: compacted log holds records without a key (invalid in a compacted topic; kept)", "count", res.KeylessRecords)
	}
	l.logger.Info("localstore: cleaned log", "reason", res.Plan.Reason, "cleaned_up_to", end,
		"segments_before", res.SegmentsBefore, "segments_after", res.SegmentsAfter,
		"bytes_before", res.BytesBefore, "bytes_after", res.BytesAfter,
		"records_removed", res.RecordsRemoved, "tombstones_removed", res.TombstonesRemoved)
	return res, nil
}

// cleanerMetadata fills s.meta: max timestamp from the (loaded) indexes,
// the first batch's max timestamp, and the file's mtime. Loading the
// indexes (the transaction index too) here also means a reader pinning
// this segment later never loads index files by path, which the swap may
// have replaced.
func (l *Log) cleanerMetadata(s *cleanerSegment, interval int) error {
	s.meta = CleanableSegment{Base: s.seg.base, Next: s.next, Size: s.size, FirstTimestamp: -1, MaxTimestamp: -1, LastModified: s.createdAt}
	if err := s.seg.ensureIndexes(s.size, s.next, interval); err != nil {
		return err
	}
	if err := l.loadTxnIndex(s.seg, s.next); err != nil {
		return err
	}
	s.seg.idx.RLock()
	s.meta.MaxTimestamp = s.seg.idx.maxTs
	s.seg.idx.RUnlock()
	f, err := s.seg.openFile()
	if err != nil {
		return err
	}
	if st, err := f.Stat(); err == nil {
		s.meta.LastModified = st.ModTime()
	}
	if s.size >= BatchHeaderSize {
		var hdr [BatchHeaderSize]byte
		if _, err := f.ReadAt(hdr[:], 0); err != nil {
			return fmt.Errorf("localstore: cleaner: read %s: %w", s.seg.logPath(), err)
		}
		if h, err := ParseBatchHeader(hdr[:]); err == nil {
			s.meta.FirstTimestamp = h.MaxTimestamp
		}
	}
	return nil
}

// keyMapEntryOverhead estimates a Go map entry's memory beyond the key bytes.
const keyMapEntryOverhead = 48

// buildKeyMap maps each key in the dirty section to its latest offset and
// returns the exclusive end of the mapped range (a segment boundary). Keys
// of aborted and undecided transactions stay out (Kafka's buildOffsetMap
// skips aborted batches; cleaner_txn.go for undecided ones).
func (l *Log) buildKeyMap(ctx context.Context, segs []cleanerSegment, plan CleanPlan, limit int64, undecided map[int64]int64, res *CleanResult) (map[string]int64, int64, error) {
	aborted, err := l.AbortedTransactions(plan.FirstDirty, plan.FirstUncleanable)
	if err != nil {
		return nil, 0, err
	}
	txns := newCleanerTxns(aborted, undecided)
	keys := map[string]int64{}
	var bytes int64
	end := plan.FirstDirty
	for _, s := range segs {
		if s.next <= plan.FirstDirty {
			continue
		}
		if s.seg.base >= plan.FirstUncleanable {
			break
		}
		if bytes > limit {
			break
		}
		err := forEachBatch(ctx, s, func(b []byte, h BatchHeader) error {
			if h.LastOffset() < plan.FirstDirty {
				return nil
			}
			if h.IsControl() {
				txns.onControl(h, decodeMarker(b, h))
				return nil
			}
			if st := txns.onData(h); st == txnAborted || st == txnUndecided {
				return nil
			}
			recs, err := decodeRecords(b, h)
			if err != nil {
				// Counted when the batch is copied in writeCleaned.
				return nil
			}
			for _, r := range recs {
				if r.key == nil {
					continue
				}
				if _, ok := keys[string(r.key)]; !ok {
					bytes += int64(len(r.key)) + keyMapEntryOverhead
				}
				keys[string(r.key)] = r.offset
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		end = s.next
	}
	return keys, end, nil
}

// forEachBatch calls fn with each batch of a pinned sealed segment (bytes
// valid only during the call), checking CRCs and that offsets increase
// within the segment. Corruption aborts the pass: a sealed segment that
// fails its CRC is media damage, and the cleaner must not rewrite it.
func forEachBatch(ctx context.Context, s cleanerSegment, fn func(b []byte, h BatchHeader) error) error {
	f, err := s.seg.openFile()
	if err != nil {
		return err
	}
	sc := newBatchScanner(f, 0, s.size, recoverScanBufSize, true)
	var big []byte
	next := s.seg.base
	for n := 0; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		h, p, err := sc.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err == nil && (h.BaseOffset < next || h.LastOffset() >= s.next) {
			err = fmt.Errorf("%w: batch at position %d has offsets [%d, %d], expected within [%d, %d)", ErrCorruption, p, h.BaseOffset, h.LastOffset(), next, s.next)
		}
		if err != nil {
			return fmt.Errorf("localstore: cleaner: %s: %w", s.seg.logPath(), err)
		}
		next = h.LastOffset() + 1
		var b []byte
		if h.Size() <= len(sc.buf) {
			if b, err = sc.window(p, h.Size()); err != nil {
				return fmt.Errorf("localstore: cleaner: %s: %w", s.seg.logPath(), err)
			}
		} else {
			if cap(big) < h.Size() {
				big = make([]byte, h.Size())
			}
			b = big[:h.Size()]
			if _, err := f.ReadAt(b, p); err != nil {
				return fmt.Errorf("localstore: cleaner: read %s: %w", s.seg.logPath(), err)
			}
		}
		if err := fn(b, h); err != nil {
			return err
		}
	}
}

// writeCleaned writes group's surviving batches to <base>.log.cleaned,
// fsynced, and returns the new segment (not yet in the log). On error the
// file is removed.
func (l *Log) writeCleaned(ctx context.Context, group []cleanerSegment, keys map[string]int64, producerLast map[int64]producerLastRecord,
	txns *cleanerTxns, now time.Time, cfg CleanerConfig, interval int, res *CleanResult) (c *cleanedSegment, err error) {
	last := group[len(group)-1]
	seg := newSegment(l.dir, group[0].seg.base, l.logger)
	c = &cleanedSegment{seg: seg, end: last.next, lastModified: last.meta.LastModified}
	for _, s := range group {
		if s.meta.LastModified.After(c.lastModified) {
			c.lastModified = s.meta.LastModified
		}
	}
	f, err := os.OpenFile(c.cleanedPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("localstore: cleaner: %w", err)
	}
	seg.file = f
	defer func() {
		var hook errCleanerHook
		if err != nil && !errors.As(err, &hook) {
			l.discardCleaned(c)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	idx := newIndexBuilder(seg.base)
	var pos int64
	write := func(b []byte, h BatchHeader) error {
		if _, err := w.Write(b); err != nil {
			return fmt.Errorf("localstore: cleaner: write %s: %w", c.cleanedPath(), err)
		}
		idx.add(h, pos, interval)
		pos += int64(len(b))
		return nil
	}
	for _, s := range group {
		err := forEachBatch(ctx, s, func(b []byte, h BatchHeader) error {
			if h.IsControl() {
				discardable := txns.onControl(h, decodeMarker(b, h))
				if discardable && !isLastOfProducer(producerLast, h) && tombstoneExpired(h.MaxTimestamp, s.meta, now, cfg.DeleteRetention) {
					res.MarkersRemoved++
					res.BatchesRemoved++
					c.changed = true
					return nil
				}
				return write(b, h)
			}
			switch txns.onData(h) {
			case txnUndecided:
				return write(b, h)
			case txnAborted:
				res.AbortedRecordsRemoved += int64(h.NumRecords)
				if !isLastOfProducer(producerLast, h) {
					res.BatchesRemoved++
					c.changed = true
					return nil
				}
				if h.NumRecords == 0 {
					return write(b, h)
				}
				nb, err := rebuildBatch(b, nil)
				if err != nil {
					return err
				}
				nh, err := ParseBatchHeader(nb)
				if err != nil {
					return err
				}
				res.BatchesRewritten++
				c.changed = true
				return write(nb, nh)
			}
			recs, err := decodeRecords(b, h)
			if err != nil {
				res.UndecodableBatches++
				l.logger.Warn("localstore: cleaner keeps a batch it cannot decode", "segment", s.seg.logPath(), "offset", h.BaseOffset, "err", err)
				return write(b, h)
			}
			expired := tombstoneExpired(h.MaxTimestamp, s.meta, now, cfg.DeleteRetention)
			kept := make([]cleanerRecord, 0, len(recs))
			for _, r := range recs {
				res.RecordsRead++
				switch latest, ok := keys[string(r.key)]; {
				case r.key == nil:
					res.KeylessRecords++
				case ok && r.offset < latest:
					res.RecordsRemoved++
					continue
				case r.tombstone && expired:
					res.TombstonesRemoved++
					continue
				}
				kept = append(kept, r)
			}
			if len(kept) == len(recs) && len(recs) > 0 {
				return write(b, h)
			}
			if len(kept) == 0 {
				// Kafka keeps an empty batch when it is the last one of a
				// producer, so its last sequence (and epoch) can still be
				// rebuilt from the log.
				if !isLastOfProducer(producerLast, h) {
					res.BatchesRemoved++
					c.changed = true
					return nil
				}
				if len(recs) == 0 {
					return write(b, h)
				}
			}
			nb, err := rebuildBatch(b, kept)
			if err != nil {
				return err
			}
			nh, err := ParseBatchHeader(nb)
			if err != nil {
				return err
			}
			res.BatchesRewritten++
			c.changed = true
			return write(nb, nh)
		})
		if err != nil {
			return c, err
		}
	}
	if err := w.Flush(); err != nil {
		return c, fmt.Errorf("localstore: cleaner: write %s: %w", c.cleanedPath(), err)
	}
	if err := f.Sync(); err != nil {
		return c, fmt.Errorf("localstore: cleaner: sync %s: %w", c.cleanedPath(), err)
	}
	// As Kafka does, the cleaned segment takes the newest replaced
	// segment's modification time, so time-based decisions that use it do
	// not see the data as new.
	if !c.lastModified.IsZero() {
		_ = os.Chtimes(c.cleanedPath(), c.lastModified, c.lastModified)
	}
	idx.seal()
	seg.size, seg.next, seg.sealed = pos, c.end, true
	seg.createdAt = last.createdAt
	seg.idx.indexBuilder = idx
	seg.idx.loaded = true
	seg.idx.aborted = txns.takeKept()
	seg.idx.flushedAborted = len(seg.idx.aborted)
	seg.idx.txnLoaded = true
	if len(seg.idx.aborted) > 0 {
		if err := writeFileAtomic(c.cleanedTxnIndexPath(), AppendTxnIndex(nil, seg.idx.aborted), true); err != nil {
			return c, err
		}
	}
	if err := hookErr("cleaned-written"); err != nil {
		return c, err
	}
	return c, nil
}
