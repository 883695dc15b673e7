package localstore

// The transaction index (<base>.txnindex), Kafka's TransactionIndex: one
// entry per aborted transaction whose abort marker lies in the segment, in
// marker order. A read_committed fetch asks for the aborted transactions
// that overlap the records it returns (Log.AbortedTransactions), and the
// consumer drops those producers' records between each transaction's first
// offset and its marker.
//
// Layout, Kafka's AbortedTxn, 34 bytes per entry, big-endian:
//
//	version int16 (= 0) | producerId int64 | firstOffset int64 |
//	lastOffset int64 (the abort marker) | lastStableOffset int64
//
// lastStableOffset is the log's LSO just after the abort (the first offset
// of the earliest other ongoing transaction, else lastOffset+1). It lets a
// search stop early: once an entry's LSO is at or past the fetch's upper
// bound, no transaction overlapping the fetch can have its marker later.
//
// Commits write nothing. A transaction whose marker comes with no data of
// its own (an empty transaction, or one whose data the cleaner removed)
// writes nothing either, as in Kafka: there is nothing to skip.

import (
	"encoding/binary"
	"fmt"
	"os"
)

// txnIndexEntrySize is AbortedTxn.TOTAL_SIZE in Kafka.
const (
	txnIndexEntrySize = 2 + 8 + 8 + 8 + 8
	txnIndexVersion   = 0
	txnIndexSuffix    = ".txnindex"
)

// AbortedTxn is one entry of the transaction index: producer ProducerID's
// transaction from FirstOffset was aborted by the marker at LastOffset.
// A read_committed Fetch response lists (ProducerID, FirstOffset) of each.
type AbortedTxn struct {
	ProducerID       int64
	FirstOffset      int64
	LastOffset       int64
	LastStableOffset int64
}

// AppendTxnIndex appends the encoded entries to dst.
func AppendTxnIndex(dst []byte, entries []AbortedTxn) []byte {
	for _, e := range entries {
		dst = binary.BigEndian.AppendUint16(dst, txnIndexVersion)
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.ProducerID))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.FirstOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.LastOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(e.LastStableOffset))
	}
	return dst
}

// DecodeTxnIndex parses a .txnindex file of the segment [base, next)
// (next < 0: unbounded). Any structural problem is an error wrapping
// ErrCorruption: a partial entry, a version other than 0, a negative
// producer id or offset, a marker outside the segment or not after the
// previous one, a first offset after its marker, or a last stable offset
// beyond the marker (it is at most lastOffset+1 when written).
//
// Kafka's own check (TransactionIndex.sanityCheck) only looks at the
// marker's offset; the stricter checks here make a damaged file fail
// instead of hiding records from read_committed consumers.
func DecodeTxnIndex(b []byte, base, next int64) ([]AbortedTxn, error) {
	return decodeTxnEntries(b, base, next)
}

// decodeTxnEntries is DecodeTxnIndex that also returns the valid entries
// before the first bad one, for recovery of a torn tail.
func decodeTxnEntries(b []byte, base, next int64) ([]AbortedTxn, error) {
	out := make([]AbortedTxn, 0, len(b)/txnIndexEntrySize)
	prev := int64(-1)
	for i := 0; i < len(b); i += txnIndexEntrySize {
		n := i / txnIndexEntrySize
		if len(b)-i < txnIndexEntrySize {
			return out, fmt.Errorf("%w: transaction index of %d bytes ends with a partial entry", ErrCorruption, len(b))
		}
		p := b[i:]
		if v := int16(binary.BigEndian.Uint16(p)); v != txnIndexVersion {
			return out, fmt.Errorf("%w: transaction index entry %d has version %d", ErrCorruption, n, v)
		}
		e := AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(p[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(p[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(p[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(p[26:])),
		}
		switch {
		case e.ProducerID < 0 || e.FirstOffset < 0 || e.LastStableOffset < 0:
			return out, fmt.Errorf("%w: transaction index entry %d has a negative field: %+v", ErrCorruption, n, e)
		case e.LastOffset < base || (next >= 0 && e.LastOffset >= next):
			return out, fmt.Errorf("%w: transaction index entry %d: marker offset %d outside the segment [%d, %d)", ErrCorruption, n, e.LastOffset, base, next)
		case e.LastOffset <= prev:
			return out, fmt.Errorf("%w: transaction index entry %d: marker offset %d not after %d", ErrCorruption, n, e.LastOffset, prev)
		case e.FirstOffset > e.LastOffset || e.LastStableOffset > e.LastOffset+1:
			return out, fmt.Errorf("%w: transaction index entry %d is inconsistent: %+v", ErrCorruption, n, e)
		}
		prev = e.LastOffset
		out = append(out, e)
	}
	return out, nil
}

// CollectAbortedTxns appends to dst the entries (of one segment, in marker
// order) that overlap the fetch range [startOffset, upperBoundOffset):
// marker at or after startOffset, first offset before upperBoundOffset.
// complete reports that an entry's last stable offset reached
// upperBoundOffset, so later segments need not be searched (Kafka's
// TransactionIndex.collectAbortedTxns). Tiering uses it on a remote
// segment's index.
func CollectAbortedTxns(dst, entries []AbortedTxn, startOffset, upperBoundOffset int64) (out []AbortedTxn, complete bool) {
	for _, e := range entries {
		if e.LastOffset >= startOffset && e.FirstOffset < upperBoundOffset {
			dst = append(dst, e)
		}
		if e.LastStableOffset >= upperBoundOffset {
			return dst, true
		}
	}
	return dst, false
}

// TxnIndexFile names a segment's transaction index in dir. The file exists
// only once the segment holds an aborted transaction (Kafka creates it
// lazily too).
func TxnIndexFile(dir string, base int64) string { return offsetFileName(dir, base, txnIndexSuffix) }

func (s *segment) txnIndexPath() string { return TxnIndexFile(s.dir, s.base) }

// readTxnIndexFile reads and decodes a segment's .txnindex; a missing file
// is an empty index. On corruption it returns the valid entries before the
// damage with an error wrapping ErrCorruption.
func readTxnIndexFile(path string, base, next int64) ([]AbortedTxn, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("localstore: %w", err)
	}
	return decodeTxnEntries(b, base, next)
}

// writeTxnIndexFile replaces a segment's .txnindex with entries, removing
// the file when there are none.
func writeTxnIndexFile(path string, entries []AbortedTxn, sync bool) error {
	if len(entries) == 0 {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("localstore: %w", err)
		}
		return nil
	}
	return writeFileAtomic(path, AppendTxnIndex(nil, entries), sync)
}

// flushTxnIndexLocked appends aborted-transaction entries not yet in the
// file, as flushIndexes does for the other two (it calls this). The caller
// holds s.idx and the writer lock (or owns the segment).
func (s *segment) flushTxnIndexLocked(sync bool) error {
	if !s.idx.txnLoaded {
		return nil
	}
	n := len(s.idx.aborted)
	if n == s.idx.flushedAborted && (!sync || n == 0) {
		return nil
	}
	if n == 0 {
		// Nothing to keep: a file left by a truncation goes.
		if err := os.Remove(s.txnIndexPath()); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("localstore: remove transaction index: %w", err)
		}
		s.idx.flushedAborted = 0
		return nil
	}
	b := AppendTxnIndex(nil, s.idx.aborted[s.idx.flushedAborted:])
	if err := appendEntriesToFile(s.txnIndexPath(), b, int64(s.idx.flushedAborted)*txnIndexEntrySize, sync); err != nil {
		return err
	}
	s.idx.flushedAborted = n
	return nil
}

func equalAborted(a, b []AbortedTxn) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
