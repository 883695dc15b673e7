package localstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// txnOp is one batch appended by a transaction test, remembered with its
// offsets so a model can say what the log must report.
type txnOp struct {
	pid         int64
	kind        string // "txn", "plain", "commit", "abort"
	base, last  int64
	coordEpoch  int32
	markerEpoch int16
}

// txnLog appends batches and records them.
type txnLog struct {
	t     *testing.T
	l     *Log
	clock *fakeClock
	ops   []txnOp
	seq   map[int64]int32
}

func newTxnLog(t *testing.T, l *Log, clock *fakeClock) *txnLog {
	return &txnLog{t: t, l: l, clock: clock, seq: map[int64]int32{}}
}

// data appends a transactional batch of n keyed records for pid.
func (w *txnLog) data(pid int64, n int, key string) txnOp {
	w.t.Helper()
	var recs []kv
	for i := 0; i < n; i++ {
		recs = append(recs, rec(fmt.Sprintf("%s-%d", key, i), fmt.Sprintf("p%d-%d", pid, len(w.ops))))
	}
	s := keyed(w.clock.Now().UnixMilli(), recs...)
	s.producerID, s.epoch, s.baseSeq, s.transactional = pid, 0, w.seq[pid], true
	w.seq[pid] += int32(n)
	info := appendKeyed(w.t, w.l, s)
	op := txnOp{pid: pid, kind: "txn", base: info.BaseOffset, last: info.LastOffset}
	w.ops = append(w.ops, op)
	return op
}

// plainData appends a non-transactional keyed batch.
func (w *txnLog) plainData(key, value string) txnOp {
	w.t.Helper()
	info := appendKeyed(w.t, w.l, keyed(w.clock.Now().UnixMilli(), rec(key, value)))
	op := txnOp{pid: -1, kind: "plain", base: info.BaseOffset, last: info.LastOffset}
	w.ops = append(w.ops, op)
	return op
}

// end appends pid's commit or abort marker.
func (w *txnLog) end(pid int64, commit bool) txnOp {
	w.t.Helper()
	info, err := w.l.Append(BuildControlBatch(pid, 0, 3, commit, w.clock.Now().UnixMilli()), 0, false)
	if err != nil {
		w.t.Fatalf("append marker: %v", err)
	}
	kind := "abort"
	if commit {
		kind = "commit"
	}
	op := txnOp{pid: pid, kind: kind, base: info.BaseOffset, last: info.LastOffset, coordEpoch: 3}
	w.ops = append(w.ops, op)
	return op
}

func (w *txnLog) commit(pid int64) txnOp { return w.end(pid, true) }
func (w *txnLog) abort(pid int64) txnOp  { return w.end(pid, false) }

// modelTxns computes, from the ops that lie below end, the aborted
// transactions Kafka would index and the first offset of the earliest
// transaction still open: a straightforward restatement of KIP-98's rules
// written for the tests.
func modelTxns(ops []txnOp, end int64) (aborted []AbortedTxn, firstUnstable int64) {
	open := map[int64]int64{}
	for _, op := range ops {
		if op.last >= end {
			break
		}
		switch op.kind {
		case "txn":
			if _, ok := open[op.pid]; !ok {
				open[op.pid] = op.base
			}
		case "commit", "abort":
			first, ok := open[op.pid]
			if !ok {
				continue
			}
			delete(open, op.pid)
			if op.kind == "abort" {
				lso := op.base + 1
				for _, f := range open {
					lso = min(lso, f)
				}
				aborted = append(aborted, AbortedTxn{ProducerID: op.pid, FirstOffset: first, LastOffset: op.base, LastStableOffset: lso})
			}
		}
	}
	firstUnstable = -1
	for _, f := range open {
		if firstUnstable < 0 || f < firstUnstable {
			firstUnstable = f
		}
	}
	return aborted, firstUnstable
}

// overlapping filters model entries the way a fetch of [start, upper)
// must see them.
func overlapping(all []AbortedTxn, start, upper int64) []AbortedTxn {
	var out []AbortedTxn
	for _, a := range all {
		if a.LastOffset >= start && a.FirstOffset < upper {
			out = append(out, a)
		}
	}
	return out
}

// checkTxnState compares the log's answers with the model for every fetch
// range worth asking about.
func checkTxnState(t *testing.T, l *Log, ops []txnOp) {
	t.Helper()
	end := l.LogEndOffset()
	want, wantFirst := modelTxns(ops, end)
	if got := l.FirstUnstableOffset(); got != wantFirst {
		t.Fatalf("FirstUnstableOffset = %d, want %d (log end %d)", got, wantFirst, end)
	}
	all, err := l.AbortedTransactions(0, end+1)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAborted(all, want) {
		t.Fatalf("aborted transactions (log end %d):\n got %+v\nwant %+v", end, all, want)
	}
	for start := l.LogStartOffset(); start <= end; start += 3 {
		for upper := start + 1; upper <= end+1; upper += 5 {
			got, err := l.AbortedTransactions(start, upper)
			if err != nil {
				t.Fatal(err)
			}
			if w := overlapping(want, start, upper); !equalAborted(got, w) {
				t.Fatalf("AbortedTransactions(%d, %d):\n got %+v\nwant %+v", start, upper, got, w)
			}
		}
	}
	// Each segment's entries are exactly the aborts whose marker it holds,
	// and the files say the same once flushed (checked by callers that
	// flush) .
	for _, s := range l.Segments() {
		if !s.Sealed {
			continue
		}
		b, err := l.SegmentTxnIndex(s.BaseOffset, s.NextOffset)
		if err != nil {
			t.Fatal(err)
		}
		got := decodeTxnIndexIndependently(t, b)
		var w []AbortedTxn
		for _, a := range want {
			if a.LastOffset >= s.BaseOffset && a.LastOffset < s.NextOffset {
				w = append(w, a)
			}
		}
		if !equalAborted(got, w) {
			t.Fatalf("segment %d index %+v, want %+v", s.BaseOffset, got, w)
		}
	}
}

// decodeTxnIndexIndependently reads Kafka's 34-byte AbortedTxn layout
// without the package's decoder.
func decodeTxnIndexIndependently(t *testing.T, b []byte) []AbortedTxn {
	t.Helper()
	if len(b)%34 != 0 {
		t.Fatalf("transaction index of %d bytes", len(b))
	}
	var out []AbortedTxn
	for ; len(b) > 0; b = b[34:] {
		if v := binary.BigEndian.Uint16(b); v != 0 {
			t.Fatalf("entry version %d", v)
		}
		out = append(out, AbortedTxn{
			ProducerID:       int64(binary.BigEndian.Uint64(b[2:])),
			FirstOffset:      int64(binary.BigEndian.Uint64(b[10:])),
			LastOffset:       int64(binary.BigEndian.Uint64(b[18:])),
			LastStableOffset: int64(binary.BigEndian.Uint64(b[26:])),
		})
	}
	return out
}

// txnIndexFiles maps base offset → decoded entries of every .txnindex in
// dir.
func txnIndexFiles(t *testing.T, dir string) map[int64][]AbortedTxn {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, "*"+txnIndexSuffix))
	out := map[int64][]AbortedTxn{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		base, err := ParseSegmentBaseOffset(p)
		if err != nil {
			t.Fatal(err)
		}
		out[base] = decodeTxnIndexIndependently(t, b)
	}
	return out
}

// checkTxnFiles compares the .txnindex files with the model, per segment.
func checkTxnFiles(t *testing.T, l *Log, ops []txnOp) {
	t.Helper()
	want, _ := modelTxns(ops, l.LogEndOffset())
	files := txnIndexFiles(t, l.Dir())
	segs := l.Segments()
	bases := make([]int64, 0, len(files))
	for b := range files {
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for _, s := range segs {
		var w []AbortedTxn
		for _, a := range want {
			if a.LastOffset >= s.BaseOffset && a.LastOffset < s.NextOffset {
				w = append(w, a)
			}
		}
		if got := files[s.BaseOffset]; !reflect.DeepEqual(got, w) && !(len(got) == 0 && len(w) == 0) {
			t.Fatalf("%020d.txnindex holds %+v, want %+v", s.BaseOffset, got, w)
		}
		delete(files, s.BaseOffset)
	}
	if len(files) > 0 {
		t.Fatalf("transaction index files without a segment: %v (bases %v)", files, bases)
	}
}

// fixCRC recomputes a batch's CRC after a test edited it.
func fixCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}
