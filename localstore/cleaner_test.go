package localstore

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// alwaysClean cleans whenever anything is dirty.
var alwaysClean = CleanerConfig{MinCleanableDirtyRatio: -1}

func cleanerTestConfig(clock *fakeClock) Config {
	cfg := testConfig(clock)
	cfg.SegmentBytes = 2000
	return cfg
}

// writeUpdates appends n single- or multi-record batches cycling over keys
// key-0..key-(keys-1), timestamped at the clock, and returns how many
// records it wrote.
func writeUpdates(t *testing.T, l *Log, clock *fakeClock, from, n, keys int) int {
	t.Helper()
	written := 0
	for i := from; i < from+n; i++ {
		var recs []kv
		for j := 0; j <= i%3; j++ {
			k := (i*3 + j) % keys
			recs = append(recs, rec(fmt.Sprintf("key-%d", k), val(i*3+j)))
		}
		appendKeyed(t, l, keyed(clock.Now().UnixMilli(), recs...))
		written += len(recs)
	}
	return written
}

func activeBytes(t *testing.T, l *Log) (int64, []byte) {
	t.Helper()
	segs := l.Segments()
	a := segs[len(segs)-1]
	b, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	return a.BaseOffset, b
}

func mustClean(t *testing.T, l *Log, cfg CleanerConfig) CleanResult {
	t.Helper()
	res, err := l.Clean(context.Background(), cfg, math.MaxInt64)
	if err != nil {
		t.Fatalf("Clean: %v", err)
	}
	return res
}

func TestCleanerKeepsLatestValuePerKey(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	cfg := cleanerTestConfig(clock)
	l := openTestLog(t, dir, cfg)
	defer func() { l.Close() }()

	writeUpdates(t, l, clock, 0, 300, 10)
	before := readKeyed(t, l)
	sizeBefore, segsBefore := l.Size(), len(l.Segments())
	activeBase, active := activeBytes(t, l)

	res := mustClean(t, l, alwaysClean)
	if !res.Cleaned || res.RecordsRemoved == 0 {
		t.Fatalf("nothing cleaned: %+v", res)
	}
	after := readKeyed(t, l)
	checkSameLatest(t, before, after)
	if base, b := activeBytes(t, l); base != activeBase || !bytes.Equal(b, active) {
		t.Fatal("the active segment changed")
	}
	// Below the cleaned range each key appears once.
	seen := map[string]bool{}
	for _, r := range after {
		if r.offset >= res.CleanedUpTo {
			break
		}
		if seen[r.key] {
			t.Fatalf("key %q twice below the cleaned offset %d", r.key, res.CleanedUpTo)
		}
		seen[r.key] = true
	}
	// Like Kafka, a pass merges segments only up to segment.bytes of input,
	// so full segments shrink in place and merge on the next pass.
	if l.Size() >= sizeBefore/2 || res.SegmentsBefore != segsBefore-1 {
		t.Fatalf("log did not shrink: %d → %d bytes, %+v", sizeBefore, l.Size(), res)
	}
	if got := l.CleanerCheckpoint(); got != res.CleanedUpTo || got != activeBase {
		t.Fatalf("checkpoint %d, cleaned up to %d, active base %d", got, res.CleanedUpTo, activeBase)
	}
	// Every offset still finds the right batch through the new indexes.
	for _, r := range after {
		s, err := l.Read(r.offset, 1, l.LogEndOffset(), true)
		if err != nil || s.FirstOffset > r.offset || s.LastOffset < r.offset {
			t.Fatalf("Read(%d): %+v %v", r.offset, s, err)
		}
		s.Release()
	}

	// An incremental pass: new updates supersede keys in the clean section.
	writeUpdates(t, l, clock, 300, 200, 10)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	before = readKeyed(t, l)
	res = mustClean(t, l, alwaysClean)
	after = readKeyed(t, l)
	checkSameLatest(t, before, after)
	if len(after) != 10 {
		t.Fatalf("after cleaning everything sealed, %d records remain, want one per key (10)", len(after))
	}
	if res.Plan.FirstDirty != activeBase {
		t.Fatalf("second pass started at %d, want the checkpoint %d", res.Plan.FirstDirty, activeBase)
	}
	if n := len(l.Segments()); n >= segsBefore {
		t.Fatalf("%d segments after the second pass, had %d before the first", n, segsBefore)
	}

	// Clean reopen and crash reopen both read the same.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, cfg)
	checkSameLatest(t, after, readKeyed(t, l))
	simulateCrash(t, l)
	l = openTestLog(t, dir, cfg)
	checkSameLatest(t, after, readKeyed(t, l))
	if len(readKeyed(t, l)) != len(after) {
		t.Fatal("reopen changed the records")
	}
}

func TestCleanerNothingSealed(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), testConfig(clock))
	defer l.Close()
	for i := 0; i < 20; i++ {
		appendKeyed(t, l, keyed(1, rec("k", val(i))))
	}
	_, active := activeBytes(t, l)
	res := mustClean(t, l, alwaysClean)
	if res.Cleaned || res.Plan.Clean {
		t.Fatalf("cleaned the active segment: %+v", res)
	}
	if _, b := activeBytes(t, l); !bytes.Equal(b, active) {
		t.Fatal("active segment changed")
	}
	if len(readKeyed(t, l)) != 20 {
		t.Fatal("records lost")
	}
}

func TestCleanerTombstonesAfterDeleteRetention(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	cc := CleanerConfig{MinCleanableDirtyRatio: -1, DeleteRetention: time.Hour}
	now := func() int64 { return clock.Now().UnixMilli() }

	appendKeyed(t, l, keyed(now(), rec("gone", "v1"), rec("stays", "s1")))
	appendKeyed(t, l, keyed(now(), rec("gone", "v2"), tomb("gone")))
	appendKeyed(t, l, keyed(now(), tomb("never-set")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	res := mustClean(t, l, cc)
	got := readKeyed(t, l)
	if res.TombstonesRemoved != 0 || len(got) != 3 {
		t.Fatalf("fresh tombstones removed: %+v, records %+v", res, got)
	}
	if v, ok := latestByKey(got)["gone"]; !ok || v != nil {
		t.Fatalf("the tombstone must still be readable: %+v", got)
	}

	// Not yet expired: a pass at 59 minutes keeps them.
	clock.Advance(59 * time.Minute)
	appendKeyed(t, l, keyed(now(), rec("other", "o1")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	if res := mustClean(t, l, cc); res.TombstonesRemoved != 0 {
		t.Fatalf("tombstones removed before delete.retention.ms: %+v", res)
	}

	clock.Advance(2 * time.Minute)
	appendKeyed(t, l, keyed(now(), rec("other", "o2")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	res = mustClean(t, l, cc)
	if res.TombstonesRemoved != 2 {
		t.Fatalf("tombstones removed %d, want 2: %+v", res.TombstonesRemoved, res)
	}
	m := latestByKey(readKeyed(t, l))
	if _, ok := m["gone"]; ok {
		t.Fatalf("gone still readable: %v", m)
	}
	if _, ok := m["never-set"]; ok {
		t.Fatalf("never-set still readable: %v", m)
	}
	if string(m["stays"]) != "s1" || string(m["other"]) != "o2" {
		t.Fatalf("live keys wrong: %v", m)
	}
}

func TestCleanerMinCompactionLag(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	writeUpdates(t, l, clock, 0, 100, 5)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	cc := CleanerConfig{MinCleanableDirtyRatio: -1, MinCompactionLag: time.Hour}
	before := readKeyed(t, l)
	if res := mustClean(t, l, cc); res.Cleaned || res.Plan.Clean {
		t.Fatalf("cleaned records younger than min.compaction.lag.ms: %+v", res)
	}
	if len(readKeyed(t, l)) != len(before) {
		t.Fatal("records removed")
	}
	clock.Advance(2 * time.Hour)
	// Newer records are not compacted, the older ones are.
	writeUpdates(t, l, clock, 100, 100, 5)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	boundary := before[len(before)-1].offset + 1
	before = readKeyed(t, l)
	res := mustClean(t, l, cc)
	if !res.Cleaned || res.Plan.FirstUncleanable != boundary {
		t.Fatalf("first uncleanable %d, want %d: %+v", res.Plan.FirstUncleanable, boundary, res)
	}
	after := readKeyed(t, l)
	checkSameLatest(t, before, after)
	var young int
	for _, r := range after {
		if r.offset >= boundary {
			young++
		}
	}
	var wrote int
	for _, r := range before {
		if r.offset >= boundary {
			wrote++
		}
	}
	if young != wrote {
		t.Fatalf("%d of %d young records survive", young, wrote)
	}
}

func TestCleanerDirtyRatio(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	writeUpdates(t, l, clock, 0, 100, 5)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	mustClean(t, l, alwaysClean)
	// A little dirty data on top of the clean section: below 0.5.
	clean := l.Size()
	appendKeyed(t, l, keyed(1, rec("key-1", "new")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	res := mustClean(t, l, CleanerConfig{MinCleanableDirtyRatio: 0.5})
	if res.Plan.Clean || res.Plan.DirtyRatio >= 0.5 || res.Plan.DirtyBytes == 0 || res.Plan.CleanBytes != clean {
		t.Fatalf("plan %+v (clean bytes %d)", res.Plan, clean)
	}
	if !strings.Contains(res.Plan.Reason, "min.cleanable.dirty.ratio") {
		t.Fatalf("reason %q", res.Plan.Reason)
	}
	res = mustClean(t, l, CleanerConfig{MinCleanableDirtyRatio: res.Plan.DirtyRatio})
	if !res.Cleaned {
		t.Fatalf("not cleaned at exactly the ratio: %+v", res.Plan)
	}
}

func TestCleanerCompressedBatches(t *testing.T) {
	codecs := map[string]kgo.CompressionCodec{
		"gzip": kgo.GzipCompression(), "lz4": kgo.Lz4Compression(),
		"snappy": kgo.SnappyCompression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
			defer l.Close()
			for i := 0; i < 60; i++ {
				s := keyed(int64(i), rec(fmt.Sprintf("k%d", i%4), val(i)), rec(fmt.Sprintf("k%d", (i+1)%4), val(1000+i)), rec(fmt.Sprintf("unique-%d", i), "u"))
				s.codec = &codec
				s.producerID, s.epoch, s.baseSeq = 42, 3, int32(3*i)
				appendKeyed(t, l, s)
			}
			if err := l.Roll(); err != nil {
				t.Fatal(err)
			}
			before := readKeyed(t, l)
			res := mustClean(t, l, alwaysClean)
			if res.BatchesRewritten == 0 {
				t.Fatalf("nothing rewritten: %+v", res)
			}
			after := readKeyed(t, l)
			checkSameLatest(t, before, after)
			if len(after) != 60+4 {
				t.Fatalf("%d records left, want 64", len(after))
			}
			batches := map[int64]BatchHeader{}
			for _, r := range before {
				batches[r.batch.BaseOffset] = r.batch
			}
			for _, r := range after {
				old := batches[r.batch.BaseOffset]
				h := r.batch
				if h.Compression() != old.Compression() || h.ProducerID != 42 || h.ProducerEpoch != 3 ||
					h.BaseSequence != old.BaseSequence || h.LastOffsetDelta != old.LastOffsetDelta {
					t.Fatalf("rewritten batch header %+v, was %+v", h, old)
				}
			}
			// A batch none of whose records were dropped stays byte for
			// byte: the last one.
			last := before[len(before)-1].batch
			got, err := l.ReadBytes(last.BaseOffset, 1<<20, l.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			parts, _ := SplitBatches(got)
			orig := buildKeyedBatch(t, func() keyedSpec {
				s := keyed(59, rec("k3", val(59)), rec("k0", val(1059)), rec("unique-59", "u"))
				s.codec = &codec
				s.producerID, s.epoch, s.baseSeq = 42, 3, 3*59
				return s
			}())
			SetBaseOffset(orig, last.BaseOffset)
			SetPartitionLeaderEpoch(orig, 0)
			if len(parts) == 0 || !bytes.Equal(parts[0], orig) {
				t.Fatal("a batch whose records all survive was rewritten")
			}
		})
	}
}

func TestCleanerKeepsTransactionalAndProducerState(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	cfg := cleanerTestConfig(clock)
	l := openTestLog(t, dir, cfg)

	// Producer 7's only batch is superseded by a plain write: it is the
	// producer's last batch, so it stays as an empty batch.
	p := keyed(1, rec("a", "from-7"))
	p.producerID, p.epoch, p.baseSeq = 7, 1, 10
	pInfo := appendKeyed(t, l, p)
	// A transactional write of "b" is copied untouched and does not
	// supersede the earlier plain "b".
	appendKeyed(t, l, keyed(2, rec("b", "plain")))
	tx := keyed(3, rec("b", "txn"))
	tx.producerID, tx.baseSeq, tx.transactional = 8, 0, true
	txInfo := appendKeyed(t, l, tx)
	appendKeyed(t, l, keyed(4, rec("a", "plain-a")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	before := readKeyed(t, l)
	mustClean(t, l, alwaysClean)
	after := readKeyed(t, l)
	checkSameLatest(t, before, after)
	var sawPlainB, sawTxn bool
	for _, r := range after {
		sawPlainB = sawPlainB || string(r.value) == "plain"
		sawTxn = sawTxn || (string(r.value) == "txn" && r.batch.BaseOffset == txInfo.BaseOffset && r.batch.IsTransactional())
		if string(r.value) == "from-7" {
			t.Fatal("superseded record of producer 7 survived")
		}
	}
	if !sawPlainB || !sawTxn {
		t.Fatalf("transactional batch or the value before it lost: %+v", after)
	}
	hs := readAll(t, l, 0)
	if hs[0].BaseOffset != pInfo.BaseOffset || hs[0].NumRecords != 0 || hs[0].ProducerID != 7 || hs[0].BaseSequence != 10 || hs[0].Compression() != 0 {
		t.Fatalf("producer 7's last batch not kept as an empty batch: %+v", hs[0])
	}
	// Producer state replays from the cleaned log after a crash.
	// Without snapshots or a recovery point, every batch is replayed.
	simulateCrash(t, l)
	snaps, _ := filepath.Glob(filepath.Join(dir, "*"+snapshotSuffix))
	for _, p := range append(snaps, filepath.Join(dir, recoveryPointFile)) {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	l = openTestLog(t, dir, cfg)
	defer l.Close()
	pe, ok := l.ProducerState(7)
	if !ok || pe.Epoch != 1 || len(pe.Batches) != 1 || pe.Batches[0].LastSeq != 10 {
		t.Fatalf("producer 7 after replay: %+v %v", pe, ok)
	}
}

// Records without a key on disk (written while the topic was not compacted;
// produce refuses them on a compacted topic) survive every pass, where
// Kafka's cleaner would drop them: see the package comment in cleaner.go.
func TestCleanerKeylessRecordsKept(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	appendKeyed(t, l, keyed(1, kv{value: []byte("no key")}, rec("k", "1")))
	appendKeyed(t, l, keyed(2, kv{value: []byte("no key again")}, rec("k", "2")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	res := mustClean(t, l, alwaysClean)
	if res.KeylessRecords != 2 || res.RecordsRemoved != 1 {
		t.Fatalf("%+v", res)
	}
	want := "0:no key 2:no key again 3:k=2"
	show := func(got []readRec) string {
		var parts []string
		for _, r := range got {
			if r.key == "" {
				parts = append(parts, fmt.Sprintf("%d:%s", r.offset, r.value))
			} else {
				parts = append(parts, fmt.Sprintf("%d:%s=%s", r.offset, r.key, r.value))
			}
		}
		return strings.Join(parts, " ")
	}
	if got := show(readKeyed(t, l)); got != want {
		t.Fatalf("after one pass: %s, want %s", got, want)
	}
	// A second pass over the cleaned section (a newer value for k dirties
	// it again) keeps them too.
	appendKeyed(t, l, keyed(3, rec("k", "3")))
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	res = mustClean(t, l, alwaysClean)
	if res.KeylessRecords != 2 || res.RecordsRemoved != 1 {
		t.Fatalf("second pass: %+v", res)
	}
	if got, want := show(readKeyed(t, l)), "0:no key 2:no key again 4:k=3"; got != want {
		t.Fatalf("after two passes: %s, want %s", got, want)
	}
}

func TestCleanerSliceOfReplacedSegmentStillReads(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	writeUpdates(t, l, clock, 0, 100, 3)
	s, err := l.Read(0, 1<<20, l.LogEndOffset(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	want := make([]byte, s.Size)
	if _, err := s.File.ReadAt(want, s.Pos); err != nil {
		t.Fatal(err)
	}
	mustClean(t, l, alwaysClean)
	got := make([]byte, s.Size)
	if _, err := s.File.ReadAt(got, s.Pos); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pinned slice changed after the swap: %v", err)
	}
}

func TestCleanerRacesRetention(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	writeUpdates(t, l, clock, 0, 200, 4)
	segs := l.Segments()
	// Retention removes the first segments between the pass's read and its
	// swap: the swap must notice and give up, leaving a correct log.
	cleanerHook = func(stage string) error {
		if stage == "cleaned-written" {
			cleanerHook = nil
			if _, err := l.DeleteRecordsBefore(segs[2].BaseOffset); err != nil {
				t.Error(err)
			}
		}
		return nil
	}
	defer func() { cleanerHook = nil }()
	if _, err := l.Clean(context.Background(), alwaysClean, math.MaxInt64); err == nil || !strings.Contains(err.Error(), "changed during cleaning") {
		t.Fatalf("Clean after a racing retention: %v", err)
	}
	if first := l.Segments()[0].BaseOffset; first != segs[2].BaseOffset {
		t.Fatalf("retention undone: first segment at %d, want %d", first, segs[2].BaseOffset)
	}
	readKeyed(t, l)
	leftovers(t, l.Dir())
	// The next pass works.
	mustClean(t, l, alwaysClean)
	leftovers(t, l.Dir())
}

// leftovers fails if cleaner temporaries remain in dir.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if n := de.Name(); strings.HasSuffix(n, cleanedSuffix) || strings.HasSuffix(n, swapSuffix) || n == cleanerSwapFile {
			t.Fatalf("leftover %s", n)
		}
	}
}

func TestCleanerKeyMapLimitSplitsPasses(t *testing.T) {
	clock := newFakeClock()
	l := openTestLog(t, t.TempDir(), cleanerTestConfig(clock))
	defer l.Close()
	writeUpdates(t, l, clock, 0, 200, 50)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	before := readKeyed(t, l)
	// Room for about one segment's keys per pass.
	cc := CleanerConfig{MinCleanableDirtyRatio: -1, KeyMapBytes: 100}
	res := mustClean(t, l, cc)
	if !res.Cleaned || res.CleanedUpTo >= l.LogEndOffset() {
		t.Fatalf("first pass mapped everything: %+v", res)
	}
	checkSameLatest(t, before, readKeyed(t, l))
	for i := 0; i < 50 && res.Plan.Clean; i++ {
		res = mustClean(t, l, cc)
		checkSameLatest(t, before, readKeyed(t, l))
	}
	if got := l.CleanerCheckpoint(); got != l.LogEndOffset() {
		t.Fatalf("checkpoint %d after repeated passes, want the log end %d", got, l.LogEndOffset())
	}
}

// TestCleanerConcurrentWithAppendsAndReads runs passes while a writer
// appends and rolls and a reader walks the log from the start; run with
// -race. Every read must see valid batches with increasing offsets.
func TestCleanerConcurrentWithAppendsAndReads(t *testing.T) {
	clock := newFakeClock()
	cfg := cleanerTestConfig(clock)
	l := openTestLog(t, t.TempDir(), cfg)
	defer l.Close()
	writeUpdates(t, l, clock, 0, 100, 7)
	done := make(chan struct{})
	errs := make(chan error, 2)
	go func() { // writer
		errs <- func() error {
			for i := 100; i < 600; i++ {
				select {
				case <-done:
					return nil
				default:
				}
				if _, err := l.Append(buildKeyedBatch(t, keyed(1, rec(fmt.Sprintf("key-%d", i%7), val(i)))), 0, false); err != nil {
					return err
				}
			}
			return nil
		}()
	}()
	go func() { // reader
		for {
			select {
			case <-done:
				errs <- nil
				return
			default:
			}
			prev := int64(-1)
			for off := l.LogStartOffset(); off < l.LogEndOffset(); {
				b, err := l.ReadBytes(off, 4096, l.LogEndOffset())
				if err != nil {
					errs <- err
					return
				}
				parts, err := SplitBatches(b)
				if err != nil || len(parts) == 0 {
					errs <- fmt.Errorf("read at %d: %d batches, %v", off, len(parts), err)
					return
				}
				for _, p := range parts {
					h, err := ValidateBatch(p)
					if err != nil || h.BaseOffset <= prev {
						errs <- fmt.Errorf("batch at %d after %d: %v", h.BaseOffset, prev, err)
						return
					}
					prev, off = h.LastOffset(), h.LastOffset()+1
				}
			}
		}
	}()
	for i := 0; i < 10; i++ {
		mustClean(t, l, alwaysClean)
	}
	close(done)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	m := latestByKey(readKeyed(t, l))
	if len(m) != 7 {
		t.Fatalf("keys %v", m)
	}
}
