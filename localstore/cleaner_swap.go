package localstore

// Crash-safe replacement of sealed segments by their cleaned version, and
// the recovery of an interrupted replacement at Open.
//
// On disk, one replacement of the segments [B, E) goes:
//
//  1. <B>.log.cleaned written and fsynced (indexes stay in memory), and
//     <B>.txnindex.cleaned when the cleaned segment keeps aborted
//     transactions (the transaction index cannot be rebuilt from the
//     segment alone, so it goes to disk before the commit).
//  2. cleaner-swap written atomically and fsynced: "0\n<B> <E>\n".
//  3. rename <B>.log.cleaned → <B>.log.swap, fsync the directory. This is
//     the commit point: from here the cleaned data replaces [B, E).
//  4. Under the log's locks: the in-memory segment list changes, the old
//     segments' files are unlinked (readers holding Slices keep their
//     descriptors).
//  5. rename <B>.log.swap → <B>.log, rename <B>.txnindex.cleaned →
//     <B>.txnindex, write <B>.index and <B>.timeindex, fsync the
//     directory, remove cleaner-swap.
//
// Open (finishInterruptedClean) deletes *.cleaned unless a commit is being
// completed; a <B>.log.swap with a cleaner-swap naming B is completed
// (every .log/.index/.timeindex/.txnindex with a base in [B, E) is
// deleted, then the renames of step 5; the other indexes are rebuilt from
// the .log on first use); any other .swap is deleted. With cleaner-swap
// naming B but neither <B>.log.swap nor <B>.log.cleaned, step 5 was under
// way: a <B>.txnindex.cleaned is renamed into place. Kafka
// recovers .swap files the same way but finds E by reading the swap
// segment's last offset, which falls short of E when the cleaner dropped a
// whole trailing segment; the descriptor makes E explicit.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	cleanedSuffix      = ".cleaned"
	swapSuffix         = ".swap"
	cleanerSwapFile    = "cleaner-swap"
	cleanerOffsetsFile = "cleaner-offset-checkpoint"
)

// cleanerHook lets tests stop a pass at a named stage, as a crash would:
// when it returns an error, Clean returns that error at once and leaves
// the files as they are. Stages, in order: "cleaned-written",
// "swap-descriptor-written", "swap-renamed", "old-segments-unlinked",
// "swap-finished".
var cleanerHook func(stage string) error

func runCleanerHook(stage string) error {
	if cleanerHook == nil {
		return nil
	}
	return cleanerHook(stage)
}

// errCleanerHook marks errors from cleanerHook so Clean skips its cleanup.
type errCleanerHook struct{ err error }

func (e errCleanerHook) Error() string {
	return "localstore: cleaner stopped by test hook: " + e.err.Error()
}
func (e errCleanerHook) Unwrap() error { return e.err }

func hookErr(stage string) error {
	if err := runCleanerHook(stage); err != nil {
		return errCleanerHook{err}
	}
	return nil
}

// encodeSwapDescriptor and decodeSwapDescriptor handle cleaner-swap.
func encodeSwapDescriptor(base, end int64) []byte {
	return []byte("0\n" + strconv.FormatInt(base, 10) + " " + strconv.FormatInt(end, 10) + "\n")
}

func decodeSwapDescriptor(b []byte) (base, end int64, err error) {
	bad := fmt.Errorf("%w: bad %s file", ErrCorruption, cleanerSwapFile)
	lines := strings.Split(string(b), "\n")
	if len(lines) != 3 || lines[0] != "0" || lines[2] != "" {
		return 0, 0, bad
	}
	bs, es, ok := strings.Cut(lines[1], " ")
	if !ok {
		return 0, 0, bad
	}
	base, err1 := strconv.ParseInt(bs, 10, 64)
	end, err2 := strconv.ParseInt(es, 10, 64)
	if err1 != nil || err2 != nil || base < 0 || end <= base {
		return 0, 0, bad
	}
	return base, end, nil
}

// encodeCleanerCheckpoint and decodeCleanerCheckpoint handle
// cleaner-offset-checkpoint: the first dirty offset, Kafka's
// cleaner-offset-checkpoint entry for this partition ("0\n<offset>\n",
// one partition per file as Strata keeps its other checkpoints).
func encodeCleanerCheckpoint(offset int64) []byte {
	return []byte("0\n" + strconv.FormatInt(offset, 10) + "\n")
}

func decodeCleanerCheckpoint(b []byte) (int64, error) {
	lines := strings.Split(string(b), "\n")
	if len(lines) != 3 || lines[0] != "0" || lines[2] != "" {
		return 0, fmt.Errorf("%w: bad %s file", ErrCorruption, cleanerOffsetsFile)
	}
	off, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("%w: bad %s file", ErrCorruption, cleanerOffsetsFile)
	}
	return off, nil
}

// readCleanerCheckpoint returns the stored first dirty offset, -1 if none
// (a missing or unreadable file just means "clean from the start").
func (l *Log) readCleanerCheckpoint() int64 {
	b, err := os.ReadFile(l.dirFile(cleanerOffsetsFile))
	if errors.Is(err, os.ErrNotExist) {
		return -1
	}
	if err == nil {
		var off int64
		if off, err = decodeCleanerCheckpoint(b); err == nil {
			return off
		}
	}
	l.logger.Warn("localstore: ignoring unreadable cleaner checkpoint", "err", err)
	return -1
}

func (l *Log) writeCleanerCheckpoint(offset int64) error {
	return writeFileAtomic(l.dirFile(cleanerOffsetsFile), encodeCleanerCheckpoint(offset), true)
}

// CleanerCheckpoint is the stored first dirty offset, -1 if the log was never
// cleaned.
func (l *Log) CleanerCheckpoint() int64 { return l.readCleanerCheckpoint() }

// finishInterruptedClean completes or discards a cleaner replacement that a
// crash interrupted (see the file comment). Called by Open before segments
// are listed.
func (l *Log) finishInterruptedClean() error {
	dirents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	descBase, descEnd, haveDesc := int64(-1), int64(-1), false
	if b, err := os.ReadFile(l.dirFile(cleanerSwapFile)); err == nil {
		if descBase, descEnd, err = decodeSwapDescriptor(b); err == nil {
			haveDesc = true
		} else {
			l.logger.Error("localstore: unreadable cleaner-swap; discarding any swap file", "err", err)
		}
	}
	have := map[string]bool{}
	for _, de := range dirents {
		have[de.Name()] = true
	}
	base := func(suffix string) string { return fmt.Sprintf("%020d%s", descBase, suffix) }
	logSwap, logCleaned := base(logSuffix+swapSuffix), base(logSuffix+cleanedSuffix)
	txnCleaned := base(txnIndexSuffix + cleanedSuffix)
	// The commit point passed (.log.swap) or step 5 began (neither file):
	// the cleaned transaction index belongs to the committed segment.
	committed := haveDesc && (have[logSwap] || !have[logCleaned])
	changed := false
	for _, de := range dirents {
		name := de.Name()
		switch {
		case committed && name == txnCleaned:
			// Renamed below.
		case strings.HasSuffix(name, cleanedSuffix):
			// Not committed: the old segments are intact.
			_ = os.Remove(l.dirFile(name))
			changed = true
		case strings.HasSuffix(name, swapSuffix) && !(haveDesc && name == logSwap):
			l.logger.Error("localstore: discarding swap file without a matching cleaner-swap", "file", name)
			_ = os.Remove(l.dirFile(name))
			changed = true
		}
	}
	if haveDesc && have[logSwap] {
		for _, de := range dirents {
			n := de.Name()
			if !strings.HasSuffix(n, logSuffix) && !strings.HasSuffix(n, indexSuffix) && !strings.HasSuffix(n, timeIndexSuffix) && !strings.HasSuffix(n, txnIndexSuffix) {
				continue
			}
			if b, err := ParseSegmentBaseOffset(n); err == nil && b >= descBase && b < descEnd {
				if err := os.Remove(l.dirFile(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("localstore: finish interrupted clean: %w", err)
				}
			}
		}
		if err := os.Rename(l.dirFile(logSwap), offsetFileName(l.dir, descBase, logSuffix)); err != nil {
			return fmt.Errorf("localstore: finish interrupted clean: %w", err)
		}
		l.logger.Warn("localstore: completed an interrupted log cleaner swap", "base", descBase, "end", descEnd)
		changed = true
	}
	if committed && have[txnCleaned] {
		if err := os.Rename(l.dirFile(txnCleaned), offsetFileName(l.dir, descBase, txnIndexSuffix)); err != nil {
			return fmt.Errorf("localstore: finish interrupted clean: %w", err)
		}
		changed = true
	}
	if _, err := os.Stat(l.dirFile(cleanerSwapFile)); err == nil {
		if err := syncDir(l.dir); err != nil {
			return err
		}
		_ = os.Remove(l.dirFile(cleanerSwapFile))
		changed = true
	}
	if changed {
		return syncDir(l.dir)
	}
	return nil
}

// cleanedSegment is a segment written by the cleaner, not yet in the log.
type cleanedSegment struct {
	seg          *segment // its file is the open .cleaned (later .swap, .log)
	end          int64    // exclusive end of the replaced offsets
	lastModified time.Time
	changed      bool // some batch was dropped or rewritten
}

func (c *cleanedSegment) cleanedPath() string { return c.seg.logPath() + cleanedSuffix }
func (c *cleanedSegment) swapPath() string    { return c.seg.logPath() + swapSuffix }
func (c *cleanedSegment) cleanedTxnIndexPath() string {
	return c.seg.txnIndexPath() + cleanedSuffix
}

// discard removes an uncommitted cleaned segment's files.
func (l *Log) discardCleaned(c *cleanedSegment) {
	c.seg.fileMu.Lock()
	if c.seg.file != nil {
		c.seg.file.Close()
		c.seg.file = nil
	}
	c.seg.fileMu.Unlock()
	// The descriptor goes first: with it and no .log.cleaned, Open would
	// take a .txnindex.cleaned for a committed one.
	for _, p := range []string{l.dirFile(cleanerSwapFile), c.cleanedPath(), c.swapPath(), c.cleanedTxnIndexPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.logger.Warn("localstore: remove cleaner file", "path", p, "err", err)
		}
	}
}

// errCleanerRaced reports that the log changed under the cleaner (retention,
// DeleteRecords or truncation removed or reopened a segment it cleaned).
var errCleanerRaced = errors.New("localstore: log changed during cleaning; pass abandoned")

// swapInCleaned replaces the pinned sealed segments old (whose sizes were
// sizes when they were read) by c, following the protocol in the file
// comment. The caller has written c's .log.cleaned (fsynced) and keeps the
// old segments pinned until this returns. Before the in-memory swap a
// failure discards c's files (the old segments are untouched); after it,
// the swap is finished on disk by the next Open if not here.
func (l *Log) swapInCleaned(old []*segment, sizes []int64, c *cleanedSegment) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.commitCleaned(old, sizes, c); err != nil {
		var hook errCleanerHook
		if !errors.As(err, &hook) {
			l.discardCleaned(c)
		}
		return err
	}
	segs := l.mu.segments
	i := 0
	for segs[i] != old[0] {
		i++
	}

	l.mu.Lock()
	next := make([]*segment, 0, len(segs)-len(old)+1)
	next = append(next, segs[:i]...)
	next = append(next, c.seg)
	next = append(next, segs[i+len(old):]...)
	l.mu.segments = next
	// Out of the list, nobody can pin them any more; readers that did keep
	// their descriptors. Their indexes were loaded when the pass read
	// them, so a pinned reader never reads the new segment's index files
	// by path.
	for _, s := range old {
		s.retire(true)
	}
	l.mu.Unlock()
	if err := hookErr("old-segments-unlinked"); err != nil {
		return err
	}
	// The new segment's descriptor follows the rename.
	if err := os.Rename(c.swapPath(), c.seg.logPath()); err != nil {
		return fmt.Errorf("localstore: cleaner swap: %w", err)
	}
	if err := hookErr("swap-finished"); err != nil {
		return err
	}
	c.seg.idx.RLock()
	haveTxnIndex := len(c.seg.idx.aborted) > 0
	c.seg.idx.RUnlock()
	if haveTxnIndex {
		if err := os.Rename(c.cleanedTxnIndexPath(), c.seg.txnIndexPath()); err != nil {
			return fmt.Errorf("localstore: cleaner swap: %w", err)
		}
	}
	c.seg.idx.RLock()
	offsets, times := c.seg.idx.offsets, c.seg.idx.times
	c.seg.idx.RUnlock()
	if err := writeIndexFiles(c.seg.indexPath(), c.seg.timeIndexPath(), offsets, times, true); err != nil {
		// The .log is in place and durable; a missing index is rebuilt
		// on first use.
		l.logger.Warn("localstore: write cleaned segment index", "err", err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	if err := os.Remove(l.dirFile(cleanerSwapFile)); err != nil {
		l.logger.Warn("localstore: remove cleaner-swap", "err", err)
	}
	return nil
}

// commitCleaned checks, with writeMu held, that old is still a run of
// sealed, unchanged segments ending where c ends, then writes the
// descriptor and renames c to .swap: the commit point.
func (l *Log) commitCleaned(old []*segment, sizes []int64, c *cleanedSegment) error {
	if l.mu.closed {
		return ErrClosed
	}
	segs := l.mu.segments
	i := -1
	for k, s := range segs {
		if s == old[0] {
			i = k
			break
		}
	}
	if i < 0 || i+len(old) >= len(segs) || segs[i+len(old)].base != c.end {
		return errCleanerRaced
	}
	for k, s := range old {
		if segs[i+k] != s || !s.sealed || s.size != sizes[k] {
			return errCleanerRaced
		}
	}
	if err := writeFileAtomic(l.dirFile(cleanerSwapFile), encodeSwapDescriptor(c.seg.base, c.end), true); err != nil {
		return err
	}
	if err := hookErr("swap-descriptor-written"); err != nil {
		return err
	}
	if err := os.Rename(c.cleanedPath(), c.swapPath()); err != nil {
		return fmt.Errorf("localstore: cleaner swap: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		return err
	}
	return hookErr("swap-renamed")
}
