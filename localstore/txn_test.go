package localstore

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestTxnAbortIndexAndLSO walks KIP-98's basic cases on one segment with
// hand-computed answers: two producers interleaved, an abort recorded with
// the LSO at that moment, a commit recording nothing, an empty
// transaction recording nothing, and the file in Kafka's layout.
func TestTxnAbortIndexAndLSO(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)

	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("empty log: first unstable %d", got)
	}
	w.plainData("k", "v")   // 0
	a1 := w.data(1, 2, "a") // 1-2: producer 1's transaction begins
	if got := l.FirstUnstableOffset(); got != a1.base {
		t.Fatalf("first unstable %d, want %d", got, a1.base)
	}
	if got := l.LastStableOffset(l.LogEndOffset()); got != a1.base {
		t.Fatalf("LSO %d, want %d", got, a1.base)
	}
	b1 := w.data(2, 1, "b") // 3: producer 2's
	w.data(1, 1, "a")       // 4
	pe, ok := l.ProducerState(1)
	if !ok || !pe.InTransaction() || pe.CurrentTxnFirstOffset != a1.base {
		t.Fatalf("producer 1 state %+v", pe)
	}
	ab := w.abort(1) // 5
	// Producer 2 is still open from 3: the LSO recorded is 3.
	want := []AbortedTxn{{ProducerID: 1, FirstOffset: a1.base, LastOffset: ab.base, LastStableOffset: b1.base}}
	got, err := l.AbortedTransactions(0, l.LogEndOffset())
	if err != nil || !equalAborted(got, want) {
		t.Fatalf("aborted %+v %v, want %+v", got, err, want)
	}
	if got := l.FirstUnstableOffset(); got != b1.base {
		t.Fatalf("first unstable after abort %d, want %d", got, b1.base)
	}
	pe, _ = l.ProducerState(1)
	if pe.InTransaction() || pe.CoordinatorEpoch != 3 {
		t.Fatalf("producer 1 after its abort: %+v", pe)
	}
	w.commit(2) // 6: records nothing
	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("first unstable after commit %d", got)
	}
	if got := l.LastStableOffset(l.LogEndOffset()); got != l.LogEndOffset() {
		t.Fatalf("LSO %d, want the log end %d", got, l.LogEndOffset())
	}
	w.abort(9) // 7: an empty transaction: no entry
	w.data(2, 1, "c")
	ab2 := w.abort(2)
	got, _ = l.AbortedTransactions(0, l.LogEndOffset())
	want = append(want, AbortedTxn{ProducerID: 2, FirstOffset: ab2.base - 1, LastOffset: ab2.base, LastStableOffset: ab2.base + 1})
	if !equalAborted(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
	// A fetch of [6, 8) overlaps no aborted transaction; one of [8, 9)
	// overlaps the second.
	if got, _ := l.AbortedTransactions(6, 8); len(got) != 0 {
		t.Fatalf("AbortedTransactions(6, 8) = %+v", got)
	}
	if got, _ := l.AbortedTransactions(8, 9); !equalAborted(got, want[1:]) {
		t.Fatalf("AbortedTransactions(8, 9) = %+v", got)
	}
	checkTxnState(t, l, w.ops)
	// Nothing is on disk until a flush; then the file is Kafka's layout.
	if files := txnIndexFiles(t, dir); len(files) != 0 {
		t.Fatalf("transaction index written before a flush: %v", files)
	}
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkTxnFiles(t, l, w.ops)
	b, err := os.ReadFile(TxnIndexFile(dir, 0))
	if err != nil || len(b) != 2*34 {
		t.Fatalf("txnindex: %d bytes, %v", len(b), err)
	}
}

// TestTxnSpanningSegments: a transaction's data in one segment and its
// abort marker two segments later. The entry lives with the marker, and a
// fetch of the first segment alone still learns of it (the search goes on
// past the fetch range until an entry's LSO covers it).
func TestTxnSpanningSegments(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	w := newTxnLog(t, l, clock)
	a := w.data(1, 3, "a")
	w.plainData("x", "1")
	roll(t, l)
	w.plainData("x", "2")
	roll(t, l)
	m := w.abort(1)
	w.data(2, 1, "b")
	w.abort(2) // LSO after it is its own marker + 1
	got, err := l.AbortedTransactions(a.base, a.last+1)
	if err != nil || len(got) != 1 || got[0].FirstOffset != a.base || got[0].LastOffset != m.base {
		t.Fatalf("fetch of the first segment: %+v %v", got, err)
	}
	checkTxnState(t, l, w.ops)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	checkTxnFiles(t, l, w.ops)
	checkTxnState(t, l, w.ops)
}

func roll(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
}

// TestTxnLastStableOffsetUnreplicated: a transaction decided by a marker at
// or above the high watermark still holds the LSO at its first offset
// (Kafka's unreplicatedTxns), until the high watermark passes the marker.
func TestTxnLastStableOffsetUnreplicated(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), testConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	w.plainData("k", "v")
	a := w.data(1, 2, "a")
	b := w.data(2, 1, "b")
	ma := w.commit(1)
	mb := w.abort(2)
	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("first unstable %d", got)
	}
	for _, c := range []struct{ hw, want int64 }{
		{a.base, a.base},      // below everything
		{ma.base, a.base},     // producer 1's commit not replicated
		{ma.base + 1, b.base}, // it is; producer 2's abort is not
		{mb.base, b.base},
		{mb.base + 1, mb.base + 1},
	} {
		if got := l.LastStableOffset(c.hw); got != c.want {
			t.Fatalf("LastStableOffset(%d) = %d, want %d", c.hw, got, c.want)
		}
	}
	// An append lets the log forget what the high watermark passed.
	w.plainData("k", "w")
	if n := len(l.mu.producers.txns.unreplicated); n != 0 {
		t.Fatalf("%d unreplicated transactions kept below the high watermark", n)
	}
}

// TestTxnMalformedMarkerRejected: a control batch that is not a
// transaction marker is refused before anything is written.
func TestTxnMalformedMarkerRejected(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), testConfig(clock))
	defer l.Close()
	// A keyed batch with the control bit set: its key is no ControlRecordKey.
	s := keyed(1, rec("not-a-control-key", "x"))
	s.producerID, s.baseSeq = 4, -1
	b := buildKeyedBatch(t, s)
	attrs := uint16(b[offAttributes])<<8 | uint16(b[offAttributes+1]) | attrControl | attrTransactional
	b[offAttributes], b[offAttributes+1] = byte(attrs>>8), byte(attrs)
	fixCRC(b)
	if _, err := l.Append(b, 0, false); !errors.Is(err, ErrCorruption) {
		t.Fatalf("Append of a bad marker: %v", err)
	}
	if l.LogEndOffset() != 0 {
		t.Fatalf("log end %d after a refused append", l.LogEndOffset())
	}
	commit, epoch, err := ParseControlBatch(BuildControlBatch(7, 2, 11, true, 5))
	if err != nil || !commit || epoch != 11 {
		t.Fatalf("ParseControlBatch of a built marker: %v %d %v", commit, epoch, err)
	}
	if _, _, err := ParseControlBatch(b); !errors.Is(err, ErrCorruption) {
		t.Fatalf("ParseControlBatch of a bad marker: %v", err)
	}
}

// TestSegmentTxnIndexAccessor: tiering gets a sealed segment's index in
// Kafka's layout, equal to the file, and nothing for the active segment or
// a range that is not a segment.
func TestSegmentTxnIndexAccessor(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	txnHistory(w, 0, false)
	roll(t, l)
	w.plainData("k", "v") // no aborts in the second segment
	roll(t, l)
	l.WaitSealed()
	segs := l.Segments()
	b, err := l.SegmentTxnIndex(segs[0].BaseOffset, segs[0].NextOffset)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(TxnIndexFile(dir, segs[0].BaseOffset))
	if err != nil || !bytes.Equal(b, file) || len(b) != 2*34 {
		t.Fatalf("accessor %x, file %x (%v)", b, file, err)
	}
	empty, err := l.SegmentTxnIndex(segs[1].BaseOffset, segs[1].NextOffset)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("segment without aborts: %x %v", empty, err)
	}
	if _, err := l.SegmentTxnIndex(segs[2].BaseOffset, segs[2].NextOffset); err == nil {
		t.Fatal("the active segment's index was handed out")
	}
	if _, err := l.SegmentTxnIndex(segs[0].BaseOffset, segs[0].NextOffset+1); err == nil {
		t.Fatal("a range that is no segment was accepted")
	}
	entries, err := DecodeTxnIndex(empty, segs[1].BaseOffset, segs[1].NextOffset)
	if err != nil || len(entries) != 0 {
		t.Fatalf("decode of an empty index: %v %v", entries, err)
	}
	if entries, err := DecodeTxnIndex(b, segs[0].BaseOffset, segs[0].NextOffset); err != nil || len(entries) != 2 {
		t.Fatalf("decode of the first segment's index: %v %v", entries, err)
	}
}
