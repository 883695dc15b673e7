package localstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// readCommitted reads the whole log as a read_committed consumer does
// (the Java client's CompletedFetch.nextFetchedRecord, franz-go's
// equivalent): it asks the log for the aborted transactions of the range,
// enters each one at its first offset, skips that producer's transactional
// batches until its abort marker, and skips control batches. Records come
// back in offset order.
func readCommitted(t testing.TB, l *Log) []readRec {
	t.Helper()
	all := readKeyed(t, l)
	aborted, err := l.AbortedTransactions(l.LogStartOffset(), l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	abortedProducers := map[int64]bool{}
	var out []readRec
	lastBatch := int64(-1)
	skip := false
	for _, r := range all {
		h := r.batch
		if h.BaseOffset != lastBatch {
			lastBatch = h.BaseOffset
			skip = false
			if h.ProducerID >= 0 {
				for len(aborted) > 0 && aborted[0].FirstOffset <= h.LastOffset() {
					abortedProducers[aborted[0].ProducerID] = true
					aborted = aborted[1:]
				}
				if h.IsControl() && isAbortMarker(t, r) {
					delete(abortedProducers, h.ProducerID)
				} else if h.IsTransactional() && abortedProducers[h.ProducerID] {
					skip = true
				}
			}
		}
		if skip || h.IsControl() {
			continue
		}
		out = append(out, r)
	}
	return out
}

func isAbortMarker(t testing.TB, r readRec) bool {
	var k kmsg.ControlRecordKey
	if err := k.ReadFrom([]byte(r.key)); err != nil {
		t.Fatalf("control record key: %v", err)
	}
	return int16(k.Type) == ControlTypeAbort
}

// markers lists the control batches left in the log.
func markers(t testing.TB, l *Log) []BatchHeader {
	t.Helper()
	var out []BatchHeader
	seen := map[int64]bool{}
	for _, r := range readKeyed(t, l) {
		if r.batch.IsControl() && !seen[r.batch.BaseOffset] {
			seen[r.batch.BaseOffset] = true
			out = append(out, r.batch)
		}
	}
	return out
}

func values(recs []readRec) map[string]bool {
	m := map[string]bool{}
	for _, r := range recs {
		m[string(r.value)] = true
	}
	return m
}

// TestCleanerTransactions follows Kafka's cleaner rules over several
// passes with a stepped clock: aborted data goes at once, its marker stays
// for the pass that removed the data and then until delete.retention.ms;
// a commit marker stays while its transaction's data remains; committed
// data compacts like any other. A read_committed reader sees the same
// latest values throughout.
func TestCleanerTransactions(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, cleanerTestConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	cc := CleanerConfig{MinCleanableDirtyRatio: -1, DeleteRetention: time.Hour}
	pass := func() CleanResult {
		t.Helper()
		w.plainData("filler", fmt.Sprint(clock.Now().UnixNano()))
		roll(t, l)
		before := readCommitted(t, l)
		res := mustClean(t, l, cc)
		after := readCommitted(t, l)
		checkSameLatest(t, before, after)
		checkSubset(t, before, after)
		return res
	}

	w.plainData("a", "plain-a")
	w.data(1, 2, "x") // x-0, x-1: aborted below
	abort1 := w.abort(1)
	w.data(1, 1, "y") // producer 1's next transaction: its last data batch
	commitY := w.commit(1)
	w.data(2, 1, "a") // a-0 committed by producer 2
	commit2 := w.commit(2)

	res := pass()
	if res.AbortedRecordsRemoved != 2 {
		t.Fatalf("aborted records removed %d, want 2: %+v", res.AbortedRecordsRemoved, res)
	}
	vals := values(readKeyed(t, l))
	if vals["p1-1"] {
		t.Fatal("aborted data still in the log")
	}
	if !vals["p1-3"] || !vals["p2-5"] {
		t.Fatalf("committed data lost: %v", vals)
	}
	// The abort marker stays, with its index entry, for the pass that
	// removed its data.
	if ms := markers(t, l); len(ms) != 3 {
		t.Fatalf("markers after pass 1: %+v", ms)
	}
	if got, _ := l.AbortedTransactions(0, l.LogEndOffset()); len(got) != 1 || got[0].LastOffset != abort1.base {
		t.Fatalf("aborted transactions after pass 1: %+v", got)
	}

	// Within delete.retention.ms the marker stays (its entry goes: nothing
	// is left to skip).
	clock.Advance(59 * time.Minute)
	if res := pass(); res.MarkersRemoved != 0 {
		t.Fatalf("markers removed before delete.retention.ms: %+v", res)
	}
	if ms := markers(t, l); len(ms) != 3 {
		t.Fatalf("markers after pass 2: %+v", ms)
	}

	// Past it the abort marker goes. Producer 1's commit marker is its
	// last word and stays; producer 2's stays because its data ("a") is
	// still the latest value.
	clock.Advance(2 * time.Minute)
	if res := pass(); res.MarkersRemoved != 1 {
		t.Fatalf("markers removed %d, want 1: %+v", res.MarkersRemoved, res)
	}
	ms := markers(t, l)
	if len(ms) != 2 || ms[0].BaseOffset != commitY.base || ms[1].BaseOffset != commit2.base {
		t.Fatalf("markers after pass 3: %+v", ms)
	}

	// Producer 2 writes again, so its first transaction's batch is no
	// longer its last, and a plain write supersedes "a": the committed
	// record goes, and once its batch has gone and delete.retention.ms has
	// passed, so does the commit marker.
	w.data(2, 1, "later")
	w.commit(2)
	w.plainData("a-0", "plain-a2")
	pass() // removes a-0's batch; the marker is kept this pass
	if ms := markers(t, l); len(ms) != 3 {
		t.Fatalf("markers after pass 4: %+v", ms)
	}
	clock.Advance(2 * time.Hour)
	res = pass()
	ms = markers(t, l)
	for _, m := range ms {
		if m.BaseOffset == commit2.base {
			t.Fatalf("producer 2's first commit marker outlived its data: %+v (%+v)", ms, res)
		}
	}
	m := latestByKey(readCommitted(t, l))
	if string(m["a-0"]) != "plain-a2" || string(m["y-0"]) != "p1-3" || string(m["later-0"]) == "" {
		t.Fatalf("latest values %q", m)
	}
	// Producer state replays from the cleaned log to the same answers.
	simulateCrash(t, l)
	l = openTestLog(t, dir, cleanerTestConfig(clock))
	if got := l.FirstUnstableOffset(); got != -1 {
		t.Fatalf("first unstable after replaying the cleaned log: %d", got)
	}
	if pe, _ := l.ProducerState(1); pe.InTransaction() {
		t.Fatalf("producer 1 reopened a transaction: %+v", pe)
	}
}

// TestCleanerLeavesUndecidedTransaction: a transaction open when the pass
// starts is copied untouched and its keys do not supersede anything; once
// aborted, the next pass drops it.
func TestCleanerLeavesUndecidedTransaction(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	w.plainData("k-0", "committed")
	w.data(3, 1, "k") // writes k-0 inside an open transaction
	w.plainData("z", "1")
	roll(t, l)
	mustClean(t, l, alwaysClean)
	vals := values(readKeyed(t, l))
	if !vals["committed"] || !vals["p3-1"] {
		t.Fatalf("undecided transaction or the value before it lost: %v", vals)
	}
	if got := l.FirstUnstableOffset(); got != w.ops[1].base {
		t.Fatalf("first unstable %d", got)
	}
	w.abort(3)
	w.plainData("z", "2")
	roll(t, l)
	before := readCommitted(t, l)
	mustClean(t, l, alwaysClean)
	checkSameLatest(t, before, readCommitted(t, l))
	vals = values(readKeyed(t, l))
	if !vals["committed"] || vals["p3-1"] {
		t.Fatalf("after the abort: %v", vals)
	}
}

// TestCleanerStopsBelowUnreplicatedMarker: a transaction whose marker is at
// or above the high watermark bounds the pass at its first offset, as
// Kafka's first unstable offset does.
func TestCleanerStopsBelowUnreplicatedMarker(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	w := newTxnLog(t, l, clock)
	w.plainData("k", "old")
	w.plainData("k", "new")
	roll(t, l)
	tx := w.data(4, 1, "t")
	roll(t, l)
	m := w.abort(4)
	w.plainData("k", "newest")
	roll(t, l)
	res, err := l.Clean(context.Background(), alwaysClean, m.base) // high watermark at the marker
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.FirstUncleanable > tx.base {
		t.Fatalf("pass reaches %d, past the unreplicated transaction at %d", res.Plan.FirstUncleanable, tx.base)
	}
	txValue := fmt.Sprintf("p4-%d", 2) // the third op
	if !values(readKeyed(t, l))[txValue] {
		t.Fatal("data of the unreplicated abort removed")
	}
	res = mustClean(t, l, alwaysClean)
	if values(readKeyed(t, l))[txValue] || res.AbortedRecordsRemoved != 1 {
		t.Fatalf("aborted data kept once the marker is below the high watermark: %+v", res)
	}
}

// TestCleanerTxnCrashAtEveryStage interrupts a pass that keeps an abort
// marker (and so writes a cleaned .txnindex) at each stage of the swap,
// abandons the log, reopens it and checks what a read_committed reader
// sees, the index files, and that the next pass completes.
func TestCleanerTxnCrashAtEveryStage(t *testing.T) {
	stages := []string{"cleaned-written", "swap-descriptor-written", "swap-renamed", "old-segments-unlinked", "swap-finished"}
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			clock := newFakeClock()
			dir := t.TempDir()
			cfg := cleanerTestConfig(clock)
			l := openTestLog(t, dir, cfg)
			w := newTxnLog(t, l, clock)
			for r := 0; r < 4; r++ {
				w.data(int64(r+1), 3, "x")
				w.plainData("p", fmt.Sprint(r))
				w.data(int64(r+1), 1, "y")
				w.abort(int64(r + 1))
				w.data(int64(r+1), 1, "z")
				w.commit(int64(r + 1))
				w.data(int64(r+1), 1, "tail") // each producer's last batch
				w.commit(int64(r + 1))
			}
			roll(t, l)
			before := readCommitted(t, l)
			cleanerHook = func(s string) error {
				if s == stage {
					return errInjectedCrash
				}
				return nil
			}
			defer func() { cleanerHook = nil }()
			if _, err := l.Clean(context.Background(), alwaysClean, math.MaxInt64); !errors.Is(err, errInjectedCrash) {
				t.Fatalf("Clean: %v", err)
			}
			cleanerHook = nil
			simulateCrash(t, l)

			l = openTestLog(t, dir, cfg)
			defer l.Close()
			leftovers(t, dir)
			after := readCommitted(t, l)
			checkSameLatest(t, before, after)
			checkSubset(t, before, after)
			checkCleanedTxnFiles(t, l)
			mustClean(t, l, alwaysClean)
			leftovers(t, dir)
			final := readCommitted(t, l)
			checkSameLatest(t, before, final)
			checkSubset(t, before, final)
			checkCleanedTxnFiles(t, l)
			for _, r := range readKeyed(t, l) {
				if r.batch.IsTransactional() && !r.batch.IsControl() && r.key[0] == 'y' {
					t.Fatalf("aborted record %+v survived a full pass", r)
				}
			}
		})
	}
}

// checkSubset: a read_committed reader sees nothing after cleaning that it
// did not see before (no aborted record resurfaces).
func checkSubset(t *testing.T, before, after []readRec) {
	t.Helper()
	seen := map[int64]bool{}
	for _, r := range before {
		seen[r.offset] = true
	}
	for _, r := range after {
		if !seen[r.offset] {
			t.Fatalf("read_committed sees offset %d (%q=%q) it did not see before cleaning", r.offset, r.key, r.value)
		}
	}
}

// checkCleanedTxnFiles: every segment's .txnindex file agrees with what the
// log reports, and names abort markers present in the segment.
func checkCleanedTxnFiles(t *testing.T, l *Log) {
	t.Helper()
	files := txnIndexFiles(t, l.Dir())
	present := map[int64]bool{}
	for _, m := range markers(t, l) {
		present[m.BaseOffset] = true
	}
	for _, s := range l.Segments() {
		if !s.Sealed {
			continue
		}
		b, err := l.SegmentTxnIndex(s.BaseOffset, s.NextOffset)
		if err != nil {
			t.Fatal(err)
		}
		mem := decodeTxnIndexIndependently(t, b)
		if !equalAborted(mem, files[s.BaseOffset]) {
			t.Fatalf("segment %d: index %+v in memory, %+v on disk", s.BaseOffset, mem, files[s.BaseOffset])
		}
		for _, a := range mem {
			if !present[a.LastOffset] || a.LastOffset < s.BaseOffset || a.LastOffset >= s.NextOffset {
				t.Fatalf("segment [%d, %d) indexes a marker at %d that it does not hold", s.BaseOffset, s.NextOffset, a.LastOffset)
			}
		}
	}
}
