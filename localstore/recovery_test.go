package localstore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// buildCrashedLog writes 40 two-record batches over several 1000-byte
// segments, flushes the first 30, and abandons the log without Close.
func buildCrashedLog(t *testing.T, dir string, cfg Config) []SegmentInfo {
	t.Helper()
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, batchSpec{records: 2, baseTs: int64(1000 + i), valueSize: 10, producerID: 5, baseSeq: int32(2 * i)}, 1)
		if i == 29 {
			if err := l.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	segs := l.Segments()
	simulateCrash(t, l)
	return segs
}

func recoveryConfig() Config {
	cfg := testConfig(newFakeClock())
	cfg.SegmentBytes = 1000
	return cfg
}

func reopenAndCheck(t *testing.T, dir string, cfg Config, wantEnd int64) (*Log, recoveryStats) {
	t.Helper()
	var stats recoveryStats
	openStatsHook = func(s recoveryStats) { stats = s }
	t.Cleanup(func() { openStatsHook = nil })
	l := openTestLog(t, dir, cfg)
	t.Cleanup(func() { l.Close() })
	if l.LogEndOffset() != wantEnd {
		t.Fatalf("LEO after recovery %d, want %d (stats %+v)", l.LogEndOffset(), wantEnd, stats)
	}
	checkContiguous(t, readAll(t, l, 0), 0, wantEnd)
	// Every offset is reachable through the (rebuilt) indexes.
	for off := int64(0); off < wantEnd; off++ {
		s, err := l.Read(off, 1, wantEnd, true)
		if err != nil || s.FirstOffset != off/2*2 {
			t.Fatalf("read %d after recovery: %+v %v", off, s, err)
		}
		s.Release()
	}
	if pe, ok := l.ProducerState(5); !ok || pe.Batches[len(pe.Batches)-1].LastOffset != wantEnd-1 {
		t.Fatalf("producer state after recovery: %+v", pe)
	}
	if ep, end := l.EndOffsetForEpoch(1); ep != 1 || end != wantEnd {
		t.Fatalf("epoch after recovery: %d %d", ep, end)
	}
	// The log keeps working.
	if info := mustAppend(t, l, plain(1, 1), 1); info.BaseOffset != wantEnd {
		t.Fatalf("append after recovery at %d", info.BaseOffset)
	}
	return l, stats
}

func TestRecoveryUncleanIntact(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	segs := buildCrashedLog(t, dir, cfg)
	_, stats := reopenAndCheck(t, dir, cfg, 80)
	if stats.clean || stats.truncatedBytes != 0 {
		t.Fatalf("stats %+v", stats)
	}
	// Only segments reaching past the recovery point (60) were scanned.
	want := 0
	for _, s := range segs {
		if s.NextOffset > 60 || !s.Sealed {
			want++
		}
	}
	if stats.scannedSegments != want || want >= len(segs) {
		t.Fatalf("scanned %d segments, want %d of %d", stats.scannedSegments, want, len(segs))
	}
}

func TestRecoveryTornTail(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	segs := buildCrashedLog(t, dir, cfg)
	last := segs[len(segs)-1]
	if err := os.Truncate(last.Path, last.Size-7); err != nil {
		t.Fatal(err)
	}
	_, stats := reopenAndCheck(t, dir, cfg, 78)
	if stats.truncatedBytes == 0 {
		t.Fatalf("stats %+v", stats)
	}
}

func TestRecoveryFlippedByte(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	segs := buildCrashedLog(t, dir, cfg)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last.Path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40 // inside the last batch's records: CRC mismatch
	if err := os.WriteFile(last.Path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	reopenAndCheck(t, dir, cfg, 78)
}

func TestRecoveryCorruptMiddleSegmentDropsLater(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	segs := buildCrashedLog(t, dir, cfg)
	// A stale recovery point (crash between a roll and its checkpoint)
	// puts sealed segments in scope; corrupt the first batch of one.
	if err := writeOffsetCheckpoint(filepath.Join(dir, recoveryPointFile), 0); err != nil {
		t.Fatal(err)
	}
	var victim SegmentInfo
	for _, s := range segs {
		if s.BaseOffset <= 44 && 44 < s.NextOffset {
			victim = s
		}
	}
	if !victim.Sealed || victim.NextOffset == segs[len(segs)-1].NextOffset {
		t.Fatalf("layout changed: victim %+v", victim)
	}
	b, _ := os.ReadFile(victim.Path)
	b[offMagic] = 9
	os.WriteFile(victim.Path, b, 0o644)
	l, stats := reopenAndCheck(t, dir, cfg, victim.BaseOffset)
	if stats.deletedSegments == 0 {
		t.Fatalf("later segments kept: %+v", stats)
	}
	if got := l.Segments(); got[len(got)-1].BaseOffset != victim.BaseOffset {
		t.Fatalf("active segment %d", got[len(got)-1].BaseOffset)
	}
}

func TestRecoveryRebuildsIndexes(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	segs := buildCrashedLog(t, dir, cfg)
	// Below the recovery point: a deleted .index and a garbage .timeindex on
	// sealed segments, found lazily. Above it: same, rebuilt at open.
	first, second := segs[0], segs[1]
	os.Remove(offsetFileName(dir, first.BaseOffset, indexSuffix))
	os.WriteFile(offsetFileName(dir, second.BaseOffset, timeIndexSuffix), []byte("garbage!!"), 0o644)
	last := segs[len(segs)-1]
	os.Remove(offsetFileName(dir, last.BaseOffset, indexSuffix))
	os.WriteFile(offsetFileName(dir, last.BaseOffset, timeIndexSuffix), bytes.Repeat([]byte{0xff}, 24), 0o644)

	l, _ := reopenAndCheck(t, dir, cfg, 80)
	for _, s := range segs[:len(segs)-1] {
		idx, err := ReadOffsetIndexFile(offsetFileName(dir, s.BaseOffset, indexSuffix), s.BaseOffset)
		if err != nil {
			t.Fatalf("index of %d not rebuilt: %v", s.BaseOffset, err)
		}
		tidx, err := ReadTimeIndexFile(offsetFileName(dir, s.BaseOffset, timeIndexSuffix), s.BaseOffset)
		if err != nil || len(tidx) == 0 {
			t.Fatalf("time index of %d not rebuilt: %v", s.BaseOffset, err)
		}
		if tidx[len(tidx)-1].Timestamp != s.MaxTimestamp {
			t.Fatalf("segment %d: last time entry %+v, max %d", s.BaseOffset, tidx[len(tidx)-1], s.MaxTimestamp)
		}
		_ = idx
	}
	if off, _, found, err := l.OffsetForTimestamp(1005); err != nil || !found || off != 8 {
		t.Fatalf("timestamp lookup after rebuild: %d %v %v", off, found, err)
	}
}

func TestRecoveryCleanMarkerWithBadActiveIndex(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	l := openTestLog(t, dir, cfg)
	for i := 0; i < 40; i++ {
		mustAppend(t, l, plain(2, int64(i)), 0)
	}
	last := l.Segments()[len(l.Segments())-1]
	l.Close()
	os.WriteFile(offsetFileName(dir, last.BaseOffset, indexSuffix), []byte{1, 2, 3}, 0o644)
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	checkContiguous(t, readAll(t, l, 0), 0, 80)
}

func TestRecoveryEmptyDirAndStrayFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := recoveryConfig()
	os.WriteFile(filepath.Join(dir, "00000000000000000099.index"), []byte{1}, 0o644)
	os.WriteFile(filepath.Join(dir, "recovery-point.tmp"), []byte{1}, 0o644)
	l := openTestLog(t, dir, cfg)
	defer l.Close()
	if l.LogEndOffset() != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("empty log: %d %d", l.LogStartOffset(), l.LogEndOffset())
	}
	for _, name := range []string{"00000000000000000099.index", "recovery-point.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s not cleaned up", name)
		}
	}
}
