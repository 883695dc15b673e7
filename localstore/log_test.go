package localstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAppendReadAcrossRolls(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 2000
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()

	var infos []AppendInfo
	for i := 0; i < 60; i++ {
		infos = append(infos, mustAppend(t, l, plain(3, int64(1000+i)), 1))
	}
	if got := l.LogEndOffset(); got != 180 {
		t.Fatalf("LEO %d, want 180", got)
	}
	for i, info := range infos {
		if info.BaseOffset != int64(3*i) || info.LastOffset != int64(3*i+2) || info.LogAppendTime != -1 {
			t.Fatalf("append %d: %+v", i, info)
		}
	}
	segs := l.Segments()
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	for i, s := range segs {
		if s.Size > cfg.SegmentBytes {
			t.Fatalf("segment %d size %d > %d", i, s.Size, cfg.SegmentBytes)
		}
		if i+1 < len(segs) && (!s.Sealed || s.NextOffset != segs[i+1].BaseOffset) {
			t.Fatalf("segment %d: %+v", i, s)
		}
	}
	hs := readAll(t, l, 0)
	checkContiguous(t, hs, 0, 180)
	for _, h := range hs {
		if h.PartitionLeaderEpoch != 1 {
			t.Fatalf("epoch %d", h.PartitionLeaderEpoch)
		}
	}

	// Middle of a batch: the whole batch comes back.
	s, err := l.Read(100, 1<<20, 180, false)
	if err != nil {
		t.Fatal(err)
	}
	if s.FirstOffset != 99 {
		t.Fatalf("first offset %d, want 99", s.FirstOffset)
	}
	s.Release()
	s.Release() // idempotent

	// Every offset reads from the batch that holds it.
	for off := int64(0); off < 180; off++ {
		s, err := l.Read(off, 1, 180, true)
		if err != nil {
			t.Fatal(err)
		}
		if s.FirstOffset != off/3*3 || s.LastOffset != off/3*3+2 {
			t.Fatalf("read %d: [%d,%d]", off, s.FirstOffset, s.LastOffset)
		}
		s.Release()
	}

	// maxBytes: whole batches only.
	batchSize := int64(len(buildBatch(plain(3, 0))))
	s, _ = l.Read(0, int(batchSize*2+5), 180, false)
	if s.Size != 2*batchSize || s.LastOffset != 5 {
		t.Fatalf("maxBytes slice: size %d last %d", s.Size, s.LastOffset)
	}
	s.Release()
	// Too small without minOneBatch: empty; with it: one batch (KIP-74).
	s, _ = l.Read(0, 10, 180, false)
	if s.Size != 0 {
		t.Fatalf("expected empty, got %d bytes", s.Size)
	}
	s, _ = l.Read(0, 10, 180, true)
	if s.Size != batchSize {
		t.Fatalf("minOneBatch: %d bytes", s.Size)
	}
	s.Release()
	// maxOffset (high watermark) cut.
	s, _ = l.Read(0, 1<<20, 7, false)
	if s.LastOffset != 8 || s.FirstOffset != 0 {
		t.Fatalf("maxOffset cut: [%d,%d]", s.FirstOffset, s.LastOffset)
	}
	s.Release()
	if s, err := l.Read(9, 1<<20, 9, false); err != nil || s.Size != 0 {
		t.Fatalf("read at maxOffset: %v %d", err, s.Size)
	}
	// At the end: empty. Beyond: out of range.
	if s, err := l.Read(180, 100, 180, true); err != nil || s.Size != 0 {
		t.Fatalf("read at LEO: %v %d", err, s.Size)
	}
	if _, err := l.Read(181, 100, 200, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read beyond LEO: %v", err)
	}
	if _, err := l.Read(-1, 100, 200, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	// A single Read never spans segments.
	s, _ = l.Read(0, 1<<20, 180, false)
	if s.LastOffset+1 != segs[0].NextOffset {
		t.Fatalf("first read ends at %d, segment ends at %d", s.LastOffset+1, segs[0].NextOffset)
	}
	s.Release()
}

func TestAppendBatchesAndLogAppendTime(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), testConfig(clock))
	defer l.Close()
	var bs [][]byte
	for i := 0; i < 5; i++ {
		bs = append(bs, buildBatch(plain(2, 10)))
	}
	infos, err := l.AppendBatches(bs, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	want := clock.Now().UnixMilli()
	for i, in := range infos {
		if in.BaseOffset != int64(2*i) || in.LogAppendTime != want || in.MaxTimestamp != want {
			t.Fatalf("info %d: %+v", i, in)
		}
	}
	hs := readAll(t, l, 0)
	checkContiguous(t, hs, 0, 10)
	for _, h := range hs {
		if h.TimestampType() != 1 || h.MaxTimestamp != want {
			t.Fatalf("header %+v", h)
		}
	}
}

func TestRollBySegmentMs(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentMs = time.Hour
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	if rolled, err := l.MaybeRoll(); err != nil || rolled {
		t.Fatalf("empty segment rolled: %v %v", rolled, err)
	}
	mustAppend(t, l, plain(1, 1), 0)
	clock.Advance(59 * time.Minute)
	mustAppend(t, l, plain(1, 1), 0)
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments before segment.ms", n)
	}
	clock.Advance(time.Minute)
	mustAppend(t, l, plain(1, 1), 0)
	segs := l.Segments()
	if len(segs) != 2 || segs[1].BaseOffset != 2 {
		t.Fatalf("segments after segment.ms: %+v", segs)
	}
	clock.Advance(time.Hour)
	if rolled, err := l.MaybeRoll(); err != nil || !rolled {
		t.Fatalf("MaybeRoll: %v %v", rolled, err)
	}
	if n := len(l.Segments()); n != 3 {
		t.Fatalf("%d segments after MaybeRoll", n)
	}
}

func TestRollByFullIndex(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.IndexIntervalBytes = 1 // index every batch but the first
	cfg.SegmentIndexBytes = 48 // 6 offset entries, 4 time entries (one reserved)
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	for i := 0; i < 20; i++ {
		mustAppend(t, l, plain(1, int64(i)), 0)
	}
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("want rolls on full index, got %d segments", len(segs))
	}
	for _, s := range segs {
		if !s.Sealed {
			continue
		}
		entries, err := ReadTimeIndexFile(offsetFileName(l.Dir(), s.BaseOffset, timeIndexSuffix), s.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > 48/12 {
			t.Fatalf("time index has %d entries", len(entries))
		}
	}
	checkContiguous(t, readAll(t, l, 0), 0, 20)
}

func TestOversizedBatchInEmptySegment(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 200
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	big := batchSpec{records: 5, valueSize: 100, producerID: -1, baseSeq: -1}
	mustAppend(t, l, big, 0)
	mustAppend(t, l, big, 0)
	segs := l.Segments()
	if len(segs) != 2 || segs[0].Size <= 200 {
		t.Fatalf("segments %+v", segs)
	}
	checkContiguous(t, readAll(t, l, 0), 0, 10)
}

func TestReopenCleanScansNothing(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 1500
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 50; i++ {
		mustAppend(t, l, plain(2, int64(i)), 3)
	}
	segsBefore := l.Segments()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); err != nil {
		t.Fatalf("no clean-shutdown marker: %v", err)
	}
	var stats recoveryStats
	openStatsHook = func(s recoveryStats) { stats = s }
	defer func() { openStatsHook = nil }()
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if !stats.clean || stats.scannedSegments != 0 {
		t.Fatalf("clean reopen scanned: %+v", stats)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanShutdownFile)); !os.IsNotExist(err) {
		t.Fatalf("marker not removed: %v", err)
	}
	// Sealed segments were not touched: no index loaded, no descriptor.
	l.mu.RLock()
	for _, s := range l.mu.segments[:len(l.mu.segments)-1] {
		if s.idx.loaded || s.file != nil {
			t.Fatalf("sealed segment %d loaded at open", s.base)
		}
	}
	l.mu.RUnlock()
	if l.LogEndOffset() != 100 {
		t.Fatalf("LEO %d", l.LogEndOffset())
	}
	checkContiguous(t, readAll(t, l, 0), 0, 100)
	segsAfter := l.Segments()
	if len(segsAfter) != len(segsBefore) {
		t.Fatalf("segments %d -> %d", len(segsBefore), len(segsAfter))
	}
	for i := range segsAfter {
		if segsAfter[i].BaseOffset != segsBefore[i].BaseOffset || segsAfter[i].MaxTimestamp != segsBefore[i].MaxTimestamp || segsAfter[i].Size != segsBefore[i].Size {
			t.Fatalf("segment %d: %+v vs %+v", i, segsAfter[i], segsBefore[i])
		}
	}
	// Appending continues where it left off.
	if info := mustAppend(t, l, plain(1, 7), 3); info.BaseOffset != 100 {
		t.Fatalf("append after reopen at %d", info.BaseOffset)
	}
}

func TestTimestampLookup(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 1000
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	// Batch i (2 records) has timestamps 1000+10i, 1000+10i+1, except a
	// late batch with an out-of-order large timestamp.
	for i := 0; i < 40; i++ {
		ts := int64(1000 + 10*i)
		if i == 25 {
			ts = 5000
		}
		mustAppend(t, l, plain(2, ts), 0)
	}
	cases := []struct {
		ts    int64
		off   int64
		found bool
	}{
		{0, 0, true},
		{1000, 0, true},
		{1001, 0, true},
		{1002, 2, true},
		{1011, 2, true},
		{1012, 4, true},
		{1240, 48, true},
		{1241, 48, true},
		{1242, 50, true}, // batch 25 (max 5001) is the first reaching it
		{1390, 50, true},
		{5001, 50, true},
		{5002, 0, false},
	}
	for _, c := range cases {
		off, _, found, err := l.OffsetForTimestamp(c.ts)
		if err != nil {
			t.Fatal(err)
		}
		if found != c.found || (found && off != c.off) {
			t.Fatalf("ts %d: got %d %v, want %d %v", c.ts, off, found, c.off, c.found)
		}
	}
	ts, off, err := l.MaxTimestamp()
	if err != nil || ts != 5001 || off != 51 {
		t.Fatalf("MaxTimestamp %d %d %v", ts, off, err)
	}
}

func TestDeleteRecordsBefore(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 1000
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, plain(2, int64(i)), int32(i/10))
	}
	before := l.Segments()
	if _, err := l.DeleteRecordsBefore(81); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond LEO: %v", err)
	}
	cut := before[2].BaseOffset + 1
	start, err := l.DeleteRecordsBefore(cut)
	if err != nil || start != cut {
		t.Fatalf("DeleteRecordsBefore: %d %v", start, err)
	}
	after := l.Segments()
	if after[0].BaseOffset != before[2].BaseOffset {
		t.Fatalf("first segment now %d, want %d", after[0].BaseOffset, before[2].BaseOffset)
	}
	if _, err := os.Stat(before[0].Path); !os.IsNotExist(err) {
		t.Fatalf("old segment still on disk: %v", err)
	}
	if _, err := l.Read(cut-1, 100, 80, true); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	if s, err := l.Read(cut, 100, 80, true); err != nil || s.FirstOffset > cut || s.LastOffset < cut {
		t.Fatalf("read at start: %+v %v", s, err)
	} else {
		s.Release()
	}
	if start, _ := l.DeleteRecordsBefore(cut - 1); start != cut {
		t.Fatalf("moving start backwards gave %d", start)
	}
	l.Close()
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != cut {
		t.Fatalf("start after reopen %d, want %d", l.LogStartOffset(), cut)
	}
	if ep, end := l.EndOffsetForEpoch(0); ep != 0 || end != 20 {
		// Epoch 0 covered [0,20); its entry was moved up to the start.
		if cut < 20 {
			t.Fatalf("epoch 0 end: %d %d", ep, end)
		}
	}
	// Delete everything: the active segment stays, empty reads work.
	if _, err := l.DeleteRecordsBefore(80); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments left", n)
	}
	if s, err := l.Read(80, 100, 80, true); err != nil || s.Size != 0 {
		t.Fatalf("read at end: %v", err)
	}
}

func TestTruncateTo(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 1000
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg)
	seq := int32(0)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, batchSpec{records: 2, baseTs: int64(100 * i), valueSize: 10, producerID: 7, epoch: 0, baseSeq: seq}, int32(i/10))
		seq += 2
	}
	// Truncate into the middle of a batch in an earlier segment.
	if err := l.TruncateTo(41); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 40 {
		t.Fatalf("LEO %d, want 40 (batch boundary)", l.LogEndOffset())
	}
	checkContiguous(t, readAll(t, l, 0), 0, 40)
	if l.LatestEpoch() != 1 {
		t.Fatalf("latest epoch %d", l.LatestEpoch())
	}
	if ep, end := l.EndOffsetForEpoch(3); ep != -1 || end != -1 {
		t.Fatalf("epoch 3 after truncation: %d %d", ep, end)
	}
	pe, ok := l.ProducerState(7)
	if !ok || pe.Batches[len(pe.Batches)-1].LastOffset != 39 || pe.Batches[len(pe.Batches)-1].LastSeq != 39 {
		t.Fatalf("producer state after truncate: %+v", pe)
	}
	ts, _, _ := l.MaxTimestamp()
	if ts != 1901 {
		t.Fatalf("max timestamp after truncate %d", ts)
	}
	// Append continues at the new end, in the same epoch or a new one.
	if info := mustAppend(t, l, plain(1, 5), 5); info.BaseOffset != 40 {
		t.Fatalf("append after truncate at %d", info.BaseOffset)
	}
	if ep, end := l.EndOffsetForEpoch(1); ep != 1 || end != 40 {
		t.Fatalf("epoch 1 end: %d %d", ep, end)
	}
	l.Close()
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	checkContiguous(t, readAll(t, l, 0), 0, 41)
	// Below the start offset: the log restarts empty there.
	if _, err := l.DeleteRecordsBefore(10); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(4); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 4 || l.LogEndOffset() != 4 {
		t.Fatalf("after full truncation: start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
}

func TestEpochCache(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTestLog(t, dir, testConfig(clock))
	if ep, end := l.EndOffsetForEpoch(0); ep != -1 || end != -1 {
		t.Fatalf("empty: %d %d", ep, end)
	}
	mustAppend(t, l, plain(5, 0), 2) // epoch 2: [0,5)
	mustAppend(t, l, plain(5, 0), 2)
	mustAppend(t, l, plain(5, 0), 4) // epoch 4: [10,15)
	mustAppend(t, l, plain(5, 0), 7) // epoch 7: [15, LEO)
	cases := []struct {
		req, ep int32
		end     int64
	}{
		{7, 7, 20}, {6, 4, 15}, {4, 4, 15}, {3, 2, 10}, {2, 2, 10}, {1, 1, 0}, {8, -1, -1}, {-1, -1, -1},
	}
	check := func(l *Log) {
		for _, c := range cases {
			if ep, end := l.EndOffsetForEpoch(c.req); ep != c.ep || end != c.end {
				t.Fatalf("EndOffsetForEpoch(%d) = %d %d, want %d %d", c.req, ep, end, c.ep, c.end)
			}
		}
	}
	check(l)
	b, err := os.ReadFile(filepath.Join(dir, epochCheckpointFile))
	if err != nil || string(b) != "0\n3\n2 0\n4 10\n7 15\n" {
		t.Fatalf("checkpoint %q %v", b, err)
	}
	l.Close()
	l = openTestLog(t, dir, testConfig(clock))
	defer l.Close()
	check(l)
}

func TestProducerStateSurvivesReopen(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(map[bool]string{true: "clean", false: "unclean"}[clean], func(t *testing.T) {
			clock := newFakeClock()
			cfg := testConfig(clock)
			cfg.SegmentBytes = 1000
			dir := t.TempDir()
			l := openTestLog(t, dir, cfg)
			for i := 0; i < 30; i++ {
				pid := int64(i % 3)
				ep := int16(0)
				if pid == 2 && i > 20 {
					ep = 1
				}
				mustAppend(t, l, batchSpec{records: 2, baseTs: int64(i), valueSize: 5, producerID: pid, epoch: ep, baseSeq: int32(i / 3 * 2)}, 0)
			}
			mustAppend(t, l, batchSpec{records: 3, baseTs: 1, valueSize: 5, producerID: 9, baseSeq: 2147483646}, 0)
			want := map[int64]ProducerEntry{}
			for _, pid := range l.ProducerIDs() {
				want[pid], _ = l.ProducerState(pid)
			}
			if len(want) != 4 {
				t.Fatalf("producers %v", l.ProducerIDs())
			}
			if e := want[0]; len(e.Batches) != 5 || e.Batches[4].LastOffset != 55 || e.Batches[0].FirstSeq != 10 {
				t.Fatalf("producer 0: %+v", e)
			}
			if e := want[2]; e.Epoch != 1 || len(e.Batches) != 3 {
				t.Fatalf("producer 2 after epoch bump: %+v", e)
			}
			if e := want[9]; e.Batches[0].LastSeq != 0 {
				t.Fatalf("sequence wrap: %+v", e)
			}
			if clean {
				l.Close()
			} else {
				simulateCrash(t, l)
			}
			l = openTestLog(t, dir, cfg)
			defer l.Close()
			for pid, w := range want {
				got, ok := l.ProducerState(pid)
				if !ok || !equalEntries(got, w) {
					t.Fatalf("producer %d: %+v, want %+v", pid, got, w)
				}
			}
		})
	}
}

func equalEntries(a, b ProducerEntry) bool {
	if a.ProducerID != b.ProducerID || a.Epoch != b.Epoch || a.LastTimestamp != b.LastTimestamp || len(a.Batches) != len(b.Batches) {
		return false
	}
	for i := range a.Batches {
		if a.Batches[i] != b.Batches[i] {
			return false
		}
	}
	return true
}

// simulateCrash abandons l without Close: buffered index entries are lost
// and there is no clean-shutdown marker, as after kill -9.
func simulateCrash(t *testing.T, l *Log) {
	t.Helper()
	l.writeMu.Lock()
	l.sealSyncs.Wait()
	l.mu.Lock()
	l.mu.closed = true
	for _, s := range l.mu.segments {
		s.retire(false)
	}
	l.mu.segments = nil
	l.mu.Unlock()
	l.writeMu.Unlock()
}

func TestFlushPolicies(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.FlushMessages = 4
	cfg.FlushMs = time.Minute
	dir := t.TempDir()
	l := openTestLog(t, dir, cfg)
	defer l.Close()
	rp := func() int64 {
		off, _, err := readOffsetCheckpoint(filepath.Join(dir, recoveryPointFile))
		if err != nil {
			t.Fatal(err)
		}
		return off
	}
	mustAppend(t, l, plain(3, 0), 0)
	if rp() != 0 {
		t.Fatalf("flushed too early: %d", rp())
	}
	mustAppend(t, l, plain(1, 0), 0)
	if rp() != 4 {
		t.Fatalf("flush.messages: recovery point %d", rp())
	}
	mustAppend(t, l, plain(1, 0), 0)
	if err := l.FlushIfDue(); err != nil || rp() != 4 {
		t.Fatalf("FlushIfDue early: %d %v", rp(), err)
	}
	clock.Advance(time.Minute)
	if err := l.FlushIfDue(); err != nil || rp() != 5 {
		t.Fatalf("FlushIfDue: %d %v", rp(), err)
	}
}

func TestSliceOutlivesDeletion(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig(clock)
	cfg.SegmentBytes = 500
	l := openTestLog(t, t.TempDir(), cfg)
	for i := 0; i < 20; i++ {
		mustAppend(t, l, plain(2, 0), 0)
	}
	s, err := l.Read(0, 1<<20, 40, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DeleteRecordsBefore(40); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, s.Size)
	if _, err := s.File.ReadAt(b, s.Pos); err != nil {
		t.Fatalf("pinned slice unreadable after delete: %v", err)
	}
	if _, err := SplitBatches(b); err != nil {
		t.Fatal(err)
	}
	s.Release()
	if _, err := l.Read(0, 1, 1, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after delete: %v", err)
	}
}
