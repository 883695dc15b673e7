package localstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// txnHistory appends a mix that covers the index's cases: interleaved
// producers, an abort while another transaction is open, a commit, an
// empty abort, plain data, and (open=true) a transaction left open.
func txnHistory(w *txnLog, round int, open bool) {
	p := int64(10 * (round + 1))
	w.data(p, 2, "a")
	w.data(p+1, 1, "b")
	w.plainData("plain", "x")
	w.data(p, 1, "a")
	w.abort(p) // with p+1 open: LSO is p+1's first offset
	w.data(p+2, 3, "c")
	w.commit(p + 1)
	w.abort(p + 5) // empty transaction
	w.abort(p + 2)
	if open {
		w.data(p+3, 1, "d")
	}
}

// copyDir copies a partition directory (regular files only).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	des, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		src, err := os.Open(filepath.Join(from, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// TestTxnRecoveryAfterCrash: after kill -9 at different points of the
// flush/snapshot cycle, Open rebuilds the ongoing transactions and every
// segment's .txnindex exactly (no abort lost, none invented).
func TestTxnRecoveryAfterCrash(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, dir string, clock *fakeClock) []txnOp
	}{
		{"unflushed", func(t *testing.T, dir string, clock *fakeClock) []txnOp {
			l := openTestLog(t, dir, testConfig(clock))
			w := newTxnLog(t, l, clock)
			txnHistory(w, 0, true)
			simulateCrash(t, l)
			return w.ops
		}},
		{"flushed-then-more", func(t *testing.T, dir string, clock *fakeClock) []txnOp {
			l := openTestLog(t, dir, testConfig(clock))
			w := newTxnLog(t, l, clock)
			txnHistory(w, 0, false)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			txnHistory(w, 1, true)
			simulateCrash(t, l)
			return w.ops
		}},
		{"rolled-and-synced", func(t *testing.T, dir string, clock *fakeClock) []txnOp {
			l := openTestLog(t, dir, testConfig(clock))
			w := newTxnLog(t, l, clock)
			w.data(99, 1, "long") // stays open across every segment
			for r := 0; r < 3; r++ {
				txnHistory(w, r, false)
				roll(t, l)
			}
			l.WaitSealed()
			txnHistory(w, 3, true)
			simulateCrash(t, l)
			return w.ops
		}},
		{"clean-reopen-then-more", func(t *testing.T, dir string, clock *fakeClock) []txnOp {
			l := openTestLog(t, dir, testConfig(clock))
			w := newTxnLog(t, l, clock)
			txnHistory(w, 0, true) // the snapshot at close holds an open transaction
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTestLog(t, dir, testConfig(clock))
			w.l = l
			w.abort(40) // ends the transaction opened before the close
			txnHistory(w, 1, true)
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
			txnHistory(w, 2, false)
			simulateCrash(t, l)
			return w.ops
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			dir := t.TempDir()
			ops := tc.run(t, dir, clock)
			l := openTestLog(t, dir, testConfig(clock))
			defer l.Close()
			if got := l.LogEndOffset(); got != ops[len(ops)-1].last+1 {
				t.Fatalf("log end %d, want %d", got, ops[len(ops)-1].last+1)
			}
			checkTxnFiles(t, l, ops)
			checkTxnState(t, l, ops)
		})
	}
}

// crashedTxnLog builds a log whose active segment has index entries both
// below and above its newest snapshot (a clean reopen in the middle), is
// flushed, and then abandoned as by kill -9. It returns the ops.
func crashedTxnLog(t *testing.T, dir string, clock *fakeClock) []txnOp {
	t.Helper()
	l := openTestLog(t, dir, testConfig(clock))
	w := newTxnLog(t, l, clock)
	txnHistory(w, 0, false)
	roll(t, l)
	txnHistory(w, 1, false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, testConfig(clock))
	w.l = l
	txnHistory(w, 2, true)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	txnHistory(w, 3, false)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	simulateCrash(t, l)
	return w.ops
}

// TestTxnRecoveryTornLogAtEveryBatch cuts the active segment's .log at
// every batch boundary and inside every batch (as a power loss could),
// leaving the flushed .txnindex as it was: recovery must drop exactly the
// entries whose markers were cut and keep all others.
func TestTxnRecoveryTornLogAtEveryBatch(t *testing.T) {
	clock := newFakeClock()
	src := t.TempDir()
	ops := crashedTxnLog(t, src, clock)
	active := activeLogPath(t, src)
	var cuts []int64
	err := ScanSegmentFile(active, func(pos int64, h BatchHeader) error {
		cuts = append(cuts, pos, pos+int64(h.Size())/2)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range cuts {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			if err := os.Truncate(filepath.Join(dir, filepath.Base(active)), cut); err != nil {
				t.Fatal(err)
			}
			l := openTestLog(t, dir, testConfig(clock))
			defer l.Close()
			checkTxnState(t, l, ops)
			checkTxnFiles(t, l, ops)
		})
	}
}

func activeLogPath(t *testing.T, dir string) string {
	t.Helper()
	logs, _ := filepath.Glob(filepath.Join(dir, "*"+logSuffix))
	if len(logs) == 0 {
		t.Fatal("no segments")
	}
	return logs[len(logs)-1]
}

// TestTxnRecoveryDamagedIndex damages the active segment's .txnindex
// after a crash: cut at every entry boundary and inside every field,
// deleted, a byte flipped in each entry,
// an invented entry appended. With the snapshot at the segment's base the
// replay regenerates the whole index; without it (lost) the replay starts
// at a later snapshot, entries below it come from the file, so each damage
// must be noticed and the index rebuilt from the whole log.
func TestTxnRecoveryDamagedIndex(t *testing.T) {
	for _, keepBase := range []bool{true, false} {
		t.Run(fmt.Sprintf("base-snapshot=%v", keepBase), func(t *testing.T) { testTxnRecoveryDamagedIndex(t, keepBase) })
	}
}

func testTxnRecoveryDamagedIndex(t *testing.T, keepBaseSnapshot bool) {
	clock := newFakeClock()
	src := t.TempDir()
	ops := crashedTxnLog(t, src, clock)
	active := activeLogPath(t, src)
	base, _ := ParseSegmentBaseOffset(active)
	idxPath := TxnIndexFile(src, base)
	orig, err := os.ReadFile(idxPath)
	if err != nil || len(orig) < 3*txnIndexEntrySize {
		t.Fatalf("active segment's txnindex: %d bytes, %v", len(orig), err)
	}
	damages := map[string]func([]byte) []byte{
		"deleted": nil,
	}
	// Cut at every entry boundary and inside every field of every entry.
	for e := 0; e < len(orig)/txnIndexEntrySize; e++ {
		for _, in := range []int{0, 1, 2, 10, 18, 26, 33} {
			k := e*txnIndexEntrySize + in
			damages[fmt.Sprintf("cut-%03d", k)] = func(b []byte) []byte { return b[:k] }
		}
	}
	for e := 0; e < len(orig)/txnIndexEntrySize; e++ {
		for _, field := range []int{0, 2, 10, 18, 26} {
			at := e*txnIndexEntrySize + field + 7
			if field == 0 {
				at = e * txnIndexEntrySize
			}
			damages[fmt.Sprintf("flip-%d-%d", e, field)] = func(b []byte) []byte {
				b = append([]byte(nil), b...)
				b[at] ^= 0x01
				return b
			}
		}
	}
	damages["invented"] = func(b []byte) []byte {
		last := decodeTxnIndexIndependently(t, b)
		e := last[len(last)-1]
		// Claims an abort at a plain-data offset after the last one.
		e.LastOffset, e.FirstOffset = e.LastOffset+1, e.LastOffset+1
		return AppendTxnIndex(append([]byte(nil), b...), []AbortedTxn{e})
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			p := TxnIndexFile(dir, base)
			if damage == nil {
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(p, damage(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			if !keepBaseSnapshot {
				if err := os.Remove(SnapshotFile(dir, base)); err != nil {
					t.Fatal(err)
				}
			}
			l := openTestLog(t, dir, testConfig(clock))
			defer l.Close()
			checkTxnState(t, l, ops)
			checkTxnFiles(t, l, ops)
		})
	}
}

// TestTxnSealedIndexRepairedOnFirstUse: a sealed segment below the
// recovery point is not read at Open; its damaged .txnindex is noticed on
// first use and rebuilt by replaying the log.
func TestTxnSealedIndexRepairedOnFirstUse(t *testing.T) {
	clock := newFakeClock()
	src := t.TempDir()
	l := openTestLog(t, src, testConfig(clock))
	w := newTxnLog(t, l, clock)
	w.data(7, 1, "spans") // open across the first two segments
	for r := 0; r < 3; r++ {
		txnHistory(w, r, false)
		if r == 1 {
			w.abort(7)
		}
		roll(t, l)
	}
	txnHistory(w, 3, true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := txnIndexFiles(t, src)
	if len(segs) < 3 {
		t.Fatalf("txnindex files %v", segs)
	}
	second := int64(-1)
	for b := range segs {
		if b > 0 && (second < 0 || b < second) {
			second = b
		}
	}
	for _, damage := range []string{"garbage", "cut", "flip-first-offset"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			p := TxnIndexFile(dir, second)
			b, _ := os.ReadFile(p)
			switch damage {
			case "garbage":
				b = bytes.Repeat([]byte{0xff}, len(b))
			case "cut":
				b = b[:len(b)-5]
			case "flip-first-offset":
				binary.BigEndian.PutUint64(b[10:], 1<<62)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var stats recoveryStats
			openStatsHook = func(s recoveryStats) { stats = s }
			l := openTestLog(t, dir, testConfig(clock))
			openStatsHook = nil
			defer l.Close()
			if !stats.clean || stats.scannedSegments != 0 {
				t.Fatalf("clean open scanned: %+v", stats)
			}
			checkTxnState(t, l, w.ops)
			// The repaired file is back on disk.
			checkTxnFiles(t, l, w.ops)
		})
	}
}

// TestTxnTruncateReopensTransaction: truncating away an abort marker drops
// its index entry and reopens its transaction (Kafka reloads producer
// state from the last snapshot below the truncation point and replays).
func TestTxnTruncateReopensTransaction(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	txnHistory(w, 0, false)
	roll(t, l) // a snapshot here, below the cut
	a := w.data(1, 2, "a")
	w.data(2, 1, "b")
	roll(t, l)
	m := w.abort(1)
	w.commit(2)
	w.plainData("x", "y")
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkTxnState(t, l, w.ops)

	if err := l.TruncateTo(m.base); err != nil {
		t.Fatal(err)
	}
	ops := w.ops[:len(w.ops)-3]
	checkTxnState(t, l, ops)
	checkTxnFiles(t, l, ops)
	if got := l.FirstUnstableOffset(); got != a.base {
		t.Fatalf("first unstable after truncation %d, want %d", got, a.base)
	}
	if pe, _ := l.ProducerState(1); !pe.InTransaction() || pe.CurrentTxnFirstOffset != a.base {
		t.Fatalf("producer 1 after truncation: %+v", pe)
	}
	// The new leader's history: producer 1 commits instead.
	w.ops = ops
	w.commit(1)
	w.abort(2)
	checkTxnState(t, l, w.ops)

	// Truncating into the middle of the first segment's history.
	cut := w.ops[4].base // producer 10's abort
	if err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	w.ops = w.ops[:4]
	checkTxnState(t, l, w.ops)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	checkTxnFiles(t, l, w.ops)
}

// TestTxnDeleteRecordsRemovesIndexFiles: retention deletes a segment's
// .txnindex with it.
func TestTxnDeleteRecordsRemovesIndexFiles(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	for r := 0; r < 3; r++ {
		txnHistory(w, r, false)
		roll(t, l)
	}
	l.WaitSealed()
	if got := len(txnIndexFiles(t, dir)); got != 3 {
		t.Fatalf("%d txnindex files, want 3", got)
	}
	segs := l.Segments()
	if _, err := l.DeleteRecordsBefore(segs[2].BaseOffset); err != nil {
		t.Fatal(err)
	}
	files := txnIndexFiles(t, dir)
	if len(files) != 1 || files[segs[2].BaseOffset] == nil {
		t.Fatalf("txnindex files after retention: %v", files)
	}
	got, err := l.AbortedTransactions(l.LogStartOffset(), l.LogEndOffset())
	if err != nil || len(got) != 2 {
		t.Fatalf("aborted after retention: %+v %v", got, err)
	}
}

// TestTxnSnapshotCarriesOngoing: a clean shutdown with a transaction open
// reopens without scanning and still knows it (snapshot v2); old v1
// snapshots still load.
func TestTxnSnapshotCarriesOngoing(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	w := newTxnLog(t, l, clock)
	w.plainData("k", "v")
	a := w.data(5, 2, "a")
	w.end(5, true)
	b := w.data(6, 1, "b")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var stats recoveryStats
	openStatsHook = func(s recoveryStats) { stats = s }
	l = openTestLog(t, dir, testConfig(clock))
	openStatsHook = nil
	defer l.Close()
	if !stats.clean || stats.scannedSegments != 0 {
		t.Fatalf("clean open scanned: %+v", stats)
	}
	if got := l.FirstUnstableOffset(); got != b.base {
		t.Fatalf("first unstable after reopen %d, want %d", got, b.base)
	}
	if pe, _ := l.ProducerState(5); pe.InTransaction() || pe.CoordinatorEpoch != 3 {
		t.Fatalf("producer 5: %+v (its transaction from %d committed)", pe, a.base)
	}
	w.l = l
	w.abort(6)
	checkTxnState(t, l, w.ops)

	// A version 1 snapshot (before transactions), built by hand.
	var v1 []byte
	v1 = append(v1, "STPS"...)
	v1 = binary.BigEndian.AppendUint16(v1, 1)
	v1 = binary.BigEndian.AppendUint32(v1, 1)
	v1 = binary.BigEndian.AppendUint64(v1, 42)  // producer id
	v1 = binary.BigEndian.AppendUint16(v1, 3)   // epoch
	v1 = binary.BigEndian.AppendUint64(v1, 999) // last timestamp
	v1 = append(v1, 1)
	for _, x := range []uint32{7, 9} {
		v1 = binary.BigEndian.AppendUint32(v1, x)
	}
	for _, x := range []uint64{100, 102, 998} {
		v1 = binary.BigEndian.AppendUint64(v1, x)
	}
	v1 = binary.BigEndian.AppendUint32(v1, crc32.Checksum(v1, castagnoli))
	table, err := decodeProducerSnapshot(v1)
	if err != nil {
		t.Fatal(err)
	}
	e := table[42]
	if e == nil || e.Epoch != 3 || e.CoordinatorEpoch != -1 || e.CurrentTxnFirstOffset != -1 || len(e.Batches) != 1 || e.Batches[0].LastOffset != 102 {
		t.Fatalf("v1 snapshot decoded as %+v", e)
	}
	if again, err := decodeProducerSnapshot(encodeProducerSnapshot(table)); err != nil || !equalEntries(*again[42], *e) || again[42].CurrentTxnFirstOffset != -1 {
		t.Fatalf("v1 → v2 round trip: %+v %v", again[42], err)
	}
}

// TestTxnRecoveryKeepsIndexOfCleanReopen: the txnindex written at a clean
// close is loaded, not rebuilt, by the next Open.
func TestTxnRecoveryKeepsIndexOfCleanReopen(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	w := newTxnLog(t, l, clock)
	txnHistory(w, 0, true)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := TxnIndexFile(dir, 0)
	before, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	after, err := os.Stat(p)
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("txnindex rewritten by a clean open: %v", err)
	}
	checkTxnState(t, l, w.ops)
	if des, _ := os.ReadDir(dir); strings.Contains(fmt.Sprint(des), tmpSuffix) {
		t.Fatalf("temporary files left: %v", des)
	}
}
