package tiering

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
)

// testBatch builds an uncompressed v2 batch of n records with values
// "v<offset-in-batch>" padded to size, timestamps ts, ts+1, ….
func testBatch(n int, ts int64, size int) []byte {
	var recs []byte
	for i := 0; i < n; i++ {
		var r []byte
		r = append(r, 0)
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, int64(i))
		r = binary.AppendVarint(r, -1)
		v := bytes.Repeat([]byte{byte('a' + i%26)}, size)
		r = binary.AppendVarint(r, int64(len(v)))
		r = append(r, v...)
		r = binary.AppendVarint(r, 0)
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	b := make([]byte, localstore.BatchHeaderSize, localstore.BatchHeaderSize+len(recs))
	binary.BigEndian.PutUint32(b[8:], uint32(localstore.BatchHeaderSize-12+len(recs)))
	b[16] = 2
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))
	binary.BigEndian.PutUint64(b[27:], uint64(ts))
	binary.BigEndian.PutUint64(b[35:], uint64(ts+int64(n-1)))
	binary.BigEndian.PutUint64(b[43:], ^uint64(0))
	binary.BigEndian.PutUint16(b[51:], 0xffff)
	binary.BigEndian.PutUint32(b[53:], ^uint32(0))
	binary.BigEndian.PutUint32(b[57:], uint32(n))
	b = append(b, recs...)
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

type fixture struct {
	log   *localstore.Log
	store remotestore.Storage
	mgr   *Manager
	part  *Partition
}

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	l, err := localstore.Open(t.TempDir(), localstore.Config{SegmentBytes: 4096, IndexIntervalBytes: 256,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if opts.Store == nil {
		if opts.Store, err = remotestore.NewLocal(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	opts.ChunkBytes = 64 << 10
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mgr.Close)
	p := mgr.Partition("events", 0, l)
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &fixture{log: l, store: opts.Store, mgr: mgr, part: p}
}

// fill appends batches of 5 records until the log has at least n records.
func (f *fixture) fill(t *testing.T, n int) {
	t.Helper()
	for f.log.LogEndOffset() < int64(n) {
		if _, err := f.log.Append(testBatch(5, 1000+f.log.LogEndOffset(), 50), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.log.Flush(); err != nil {
		t.Fatal(err)
	}
}

func TestCopyAndReadBack(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{ManifestKeep: 4})
	f.fill(t, 600)
	n, err := f.part.CopyOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sealed := 0
	for _, s := range f.log.Segments() {
		if s.Sealed {
			sealed++
		}
	}
	if n != sealed || n < 5 {
		t.Fatalf("copied %d segments, %d sealed", n, sealed)
	}
	// Nothing new to copy: a second pass copies nothing.
	if n, err := f.part.CopyOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second pass copied %d: %v", n, err)
	}
	m := f.part.Manifest()
	if len(m.Parts) == 0 {
		t.Fatalf("no manifest parts spilled with ManifestKeep=4 and %d segments", n)
	}
	end := m.EndOffset()
	// Read every remote offset back and compare with the local log.
	for off := int64(0); off < end; {
		recs, err := f.part.Read(ctx, off, 1000)
		got := recs.Bytes()
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		want, err := f.log.ReadBytes(off, 1000, end)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("remote bytes at %d differ from local (%d vs %d bytes)", off, len(got), len(want))
		}
		h, _ := localstore.ParseBatchHeader(got[len(got)-lastBatchSize(t, got):])
		off = h.LastOffset() + 1
	}
	// A restart (a new Manager, same bucket) sees the same manifest.
	mgr2, _ := NewManager(Options{Store: f.store, ChunkBytes: 64 << 10, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	p2 := mgr2.Partition("events", 0, f.log)
	if err := p2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if p2.Manifest().EndOffset() != end || len(p2.Manifest().Segments) != len(m.Segments) {
		t.Fatalf("reloaded manifest: end %d (want %d), %d entries (want %d)", p2.Manifest().EndOffset(), end, len(p2.Manifest().Segments), len(m.Segments))
	}
	// Timestamp lookup in remote segments.
	off, ts, found, err := f.part.OffsetForTimestamp(ctx, 1000+123)
	if err != nil || !found || off > 123 || ts < 1000+123 {
		t.Fatalf("timestamp lookup: off %d ts %d found %v err %v", off, ts, found, err)
	}
}

func lastBatchSize(t *testing.T, b []byte) int {
	t.Helper()
	pos := 0
	for {
		h, err := localstore.ParseBatchHeader(b[pos:])
		if err != nil {
			t.Fatal(err)
		}
		if pos+h.Size() >= len(b) {
			return h.Size()
		}
		pos += h.Size()
	}
}

func TestInterruptedCopyIsRedoneWithoutDuplicates(t *testing.T) {
	ctx := context.Background()
	failing := &failingStore{Storage: nil}
	f := newFixture(t, Options{Store: nil})
	failing.Storage = f.store
	f.mgr.opts.Store = failing
	f.part.ms.store = failing
	f.fill(t, 300)
	// The .log upload of the second segment fails (as if the broker died or
	// the store went away mid-copy).
	failing.failPutAfter = 2 // manifest writes do not count; see failingStore
	if _, err := f.part.CopyOnce(ctx); err == nil {
		t.Fatal("copy with a failing store succeeded")
	}
	m := f.part.Manifest()
	started := 0
	for _, s := range m.Segments {
		if s.State == CopyStarted {
			started++
		}
	}
	if started != 1 {
		t.Fatalf("%d copy_started entries after the failure, want 1", started)
	}
	failing.failPutAfter = -1
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	m = f.part.Manifest()
	seen := map[int64]bool{}
	for _, s := range m.Segments {
		if s.State != CopyFinished || seen[s.BaseOffset] {
			t.Fatalf("after the retry: entry %+v (duplicate or unfinished)", s)
		}
		seen[s.BaseOffset] = true
	}
	// The abandoned copy's objects are gone: every .log in the bucket is
	// referenced by the manifest.
	objs, _ := f.store.List(ctx, f.part.Prefix())
	refs := map[string]bool{}
	for _, s := range m.Segments {
		refs[s.LogKey(f.part.Prefix())] = true
	}
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".log") && !refs[o.Key] {
			t.Fatalf("unreferenced object %s left behind", o.Key)
		}
	}
}

func TestDeposedWriterIsFenced(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	f.fill(t, 100)
	// A second writer (the new leader) on the same bucket commits first.
	other := f.mgr.Partition("events", 0, f.log)
	if err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	other.SetLeaderEpoch(1)
	if _, err := other.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	f.log.Roll()
	f.fill(t, 200)
	if _, err := f.part.CopyOnce(ctx); !errors.Is(err, ErrFenced) {
		t.Fatalf("stale writer: %v, want ErrFenced", err)
	}
}

func TestCorruptRemoteObjectIsAnError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, _ := remotestore.NewLocal(dir)
	f := newFixture(t, Options{Store: store})
	f.fill(t, 200)
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	seg := f.part.Manifest().Readable()[0]
	// Flip a byte inside the first batch's records.
	path := dir + "/" + seg.LogKey(f.part.Prefix())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 0xff
	os.WriteFile(path, b, 0o644)
	if _, err := f.part.Read(ctx, seg.BaseOffset, 1<<20); !errors.Is(err, ErrCorruptObject) {
		t.Fatalf("read of a corrupt object: %v", err)
	}
}

// failingStore fails segment uploads after a number of successful ones.
type failingStore struct {
	remotestore.Storage
	failPutAfter int
}

func (s *failingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if strings.HasSuffix(key, ".log") && s.failPutAfter >= 0 {
		if s.failPutAfter == 0 {
			return errors.New("injected: store unavailable")
		}
		s.failPutAfter--
	}
	return s.Storage.Put(ctx, key, r, size)
}

func TestSweepRemovesOnlyOldUnreferencedObjects(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	f.fill(t, 200)
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	orphan := f.part.Prefix() + "00000000000000099999-0-deadbeef.log"
	f.store.Put(ctx, orphan, strings.NewReader("junk"), 4)
	// Young orphans survive (a writer may be creating them right now).
	if n, err := f.part.Sweep(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep with a long grace removed %d: %v", n, err)
	}
	n, err := f.part.Sweep(ctx, -time.Hour)
	if err != nil || n < 1 {
		t.Fatalf("sweep removed %d: %v", n, err)
	}
	if _, err := f.store.Head(ctx, orphan); !errors.Is(err, remotestore.ErrNotFound) {
		t.Fatalf("orphan still there: %v", err)
	}
	// Everything the manifest references is still readable.
	end := f.part.Manifest().EndOffset()
	for off := int64(0); off < end; off += 5 {
		if _, err := f.part.Read(ctx, off, 100); err != nil {
			t.Fatalf("read %d after sweep: %v", off, err)
		}
	}
}

func TestAdvanceLogStartDeletesBelowIt(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{ManifestKeep: 4})
	f.fill(t, 800)
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	m := f.part.Manifest()
	if len(m.Parts) == 0 {
		t.Fatal("want spilled parts for this test")
	}
	segs := m.Readable()
	cut := segs[len(segs)-2].BaseOffset // everything but the last two segments
	st, err := f.part.AdvanceLogStart(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != len(segs)-2 {
		t.Fatalf("deleted %d segments, want %d", st.Segments, len(segs)-2)
	}
	m = f.part.Manifest()
	if m.StartOffset() != cut || len(m.Readable()) != 2 {
		t.Fatalf("after retention: start %d, %d readable", m.StartOffset(), len(m.Readable()))
	}
	if _, err := f.part.Read(ctx, cut-1, 100); !errors.Is(err, ErrNotRemote) {
		t.Fatalf("read below the start: %v", err)
	}
	// Only the survivors' objects (and manifest objects) remain.
	objs, _ := f.store.List(ctx, f.part.Prefix())
	logs := 0
	for _, o := range objs {
		if strings.HasSuffix(o.Key, ".log") {
			logs++
		}
	}
	if logs != 2 {
		t.Fatalf("%d .log objects left, want 2", logs)
	}
	// Reloading from the bucket agrees.
	p2 := f.mgr.Partition("events", 0, f.log)
	if err := p2.Load(ctx); err != nil || p2.Manifest().StartOffset() != cut {
		t.Fatalf("reloaded: %v start %d", err, p2.Manifest().StartOffset())
	}
	if err := f.part.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if objs, _ := f.store.List(ctx, f.part.Prefix()); len(objs) != 0 {
		t.Fatalf("%d objects left after DeleteAll", len(objs))
	}
}

// failingDeletes fails object deletions while on.
type failingDeletes struct {
	remotestore.Storage
	on bool
}

func (s *failingDeletes) Delete(ctx context.Context, keys ...string) error {
	if s.on {
		return errors.New("injected: crash before the objects were deleted")
	}
	return s.Storage.Delete(ctx, keys...)
}

// TestCrashBetweenStartAdvanceAndObjectDeletion: the log start is durable
// first; if the objects are not deleted (a crash), no reader sees the deleted
// range, and the next pass (after a restart) deletes them.
func TestCrashBetweenStartAdvanceAndObjectDeletion(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	fd := &failingDeletes{Storage: f.store}
	f.mgr.opts.Store = fd
	f.part.ms.store = fd
	f.fill(t, 300)
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	segs := f.part.Manifest().Readable()
	cut := segs[2].BaseOffset
	fd.on = true
	if _, err := f.part.AdvanceLogStart(ctx, cut); err == nil {
		t.Fatal("deletion with a failing store succeeded")
	}
	// "Restart": a new manager reads the bucket.
	fd.on = false
	mgr2, _ := NewManager(Options{Store: f.store, ChunkBytes: 64 << 10, Logger: f.mgr.opts.Logger})
	p2 := mgr2.Partition("events", 0, f.log)
	if err := p2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if p2.Manifest().StartOffset() != cut {
		t.Fatalf("after the crash the remote start is %d, want %d", p2.Manifest().StartOffset(), cut)
	}
	if _, err := p2.Read(ctx, segs[0].BaseOffset, 100); !errors.Is(err, ErrNotRemote) {
		t.Fatalf("deleted range readable after the crash: %v", err)
	}
	// The next pass finishes: the doomed objects go.
	if _, err := p2.AdvanceLogStart(ctx, cut); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs[:2] {
		if _, err := f.store.Head(ctx, s.LogKey(p2.Prefix())); !errors.Is(err, remotestore.ErrNotFound) {
			t.Fatalf("object of deleted segment %d survives: %v", s.BaseOffset, err)
		}
	}
	if _, err := p2.Read(ctx, cut, 100); err != nil {
		t.Fatalf("read at the new start: %v", err)
	}
}

// TestCloseWithReadAheadInFlight: closing the manager while read-ahead
// fetches are running must not panic (ristretto panics on a Set after Close).
func TestCloseWithReadAheadInFlight(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	// Segments of many 64 KiB chunks, so a read triggers read-ahead.
	l, err := localstore.Open(t.TempDir(), localstore.Config{SegmentBytes: 1 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for l.LogEndOffset() < 20000 {
		if _, err := l.Append(testBatch(50, 1000, 200), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	l.Roll()
	l.Flush()
	f.log = l
	f.part = f.mgr.Partition("events", 0, l)
	if _, err := f.part.CopyOnce(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		mgr, err := NewManager(Options{Store: f.store, ChunkBytes: 64 << 10, Logger: f.mgr.opts.Logger})
		if err != nil {
			t.Fatal(err)
		}
		p := mgr.Partition("events", 0, f.log)
		if err := p.Load(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Read(ctx, 0, 1000); err != nil {
			t.Fatal(err)
		}
		mgr.Close()
	}
}
