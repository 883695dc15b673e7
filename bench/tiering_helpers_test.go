package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/tiering"
)

// The tiering benchmarks' building blocks, shared with the fast harness test
// (TestTieringHarnessMovesTheBytes) so that what the benchmarks count is
// checked on every plain `go test ./bench/`.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// tierBatch is a valid, uncompressed v2 batch (CRC set) of n records of
// size-byte values from the pseudo-text corpus, as a producer would send
// it. The log rewrites the base offset and leader epoch on append; neither
// is covered by the CRC, so one batch can be appended many times.
func tierBatch(n, size int, ts int64) []byte {
	b := rawBatch(workload{size: size, codec: "none"}, n, 0)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12)) // batch length
	b[16] = 2                                            // magic
	binary.BigEndian.PutUint32(b[23:], uint32(n-1))      // last offset delta
	binary.BigEndian.PutUint64(b[27:], uint64(ts))       // base timestamp
	binary.BigEndian.PutUint64(b[35:], uint64(ts))       // max timestamp
	binary.BigEndian.PutUint64(b[43:], ^uint64(0))       // producer id -1
	binary.BigEndian.PutUint16(b[51:], 0xffff)           // producer epoch -1
	binary.BigEndian.PutUint32(b[53:], ^uint32(0))       // base sequence -1
	binary.BigEndian.PutUint32(b[57:], uint32(n))        // records
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// tierLogSpec shapes the local log the tiering benchmarks copy and replay.
type tierLogSpec struct {
	total        int64 // bytes of batches to append
	segmentBytes int64 // segment.bytes
	batchRecords int   // records per batch
	recordSize   int   // value bytes per record
}

// openTierLog opens an empty log with the spec's segment size.
func openTierLog(tb testing.TB, dir string, spec tierLogSpec) *localstore.Log {
	tb.Helper()
	l, err := localstore.Open(dir, localstore.Config{SegmentBytes: spec.segmentBytes, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// appendTierBytes appends copies of batch until n more bytes are in the log.
func appendTierBytes(tb testing.TB, l *localstore.Log, batch []byte, n int64) {
	tb.Helper()
	for done := int64(0); done < n; done += int64(len(batch)) {
		if _, err := l.Append(batch, 0, false); err != nil {
			tb.Fatal(err)
		}
	}
}

// buildTierLog builds a sealed, fsynced log of spec.total bytes and returns
// it with its sealed segments.
func buildTierLog(tb testing.TB, dir string, spec tierLogSpec) (*localstore.Log, []localstore.SegmentInfo) {
	tb.Helper()
	l := openTierLog(tb, dir, spec)
	appendTierBytes(tb, l, tierBatch(spec.batchRecords, spec.recordSize, time.Now().UnixMilli()), spec.total)
	if err := l.Roll(); err != nil {
		tb.Fatal(err)
	}
	if err := l.Flush(); err != nil {
		tb.Fatal(err)
	}
	var segs []localstore.SegmentInfo
	for _, s := range l.Segments() {
		if s.Sealed && s.Size > 0 {
			segs = append(segs, s)
		}
	}
	return l, segs
}

func segBytes(segs []localstore.SegmentInfo) int64 {
	var n int64
	for _, s := range segs {
		n += s.Size
	}
	return n
}

// newTierManager is a tiering.Manager on store with chunkBytes chunks, a
// cache of cacheBytes, and readAheadBytes of read-ahead (0: the default,
// -1: off).
func newTierManager(tb testing.TB, store remotestore.Storage, chunkBytes, cacheBytes, readAheadBytes int64) *tiering.Manager {
	tb.Helper()
	m, err := tiering.NewManager(tiering.Options{Store: store, ChunkBytes: chunkBytes, CacheBytes: cacheBytes,
		ReadAheadBytes: readAheadBytes, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// rawCopy puts each segment's .log under prefix with one Storage.Put — the
// floor of copying: the same bytes, no index bundle, no manifest.
func rawCopy(ctx context.Context, store remotestore.Storage, prefix string, segs []localstore.SegmentInfo) error {
	for _, s := range segs {
		f, err := os.Open(s.Path)
		if err != nil {
			return err
		}
		err = store.Put(ctx, fmt.Sprintf("%s%020d.log", prefix, s.BaseOffset), f, s.Size)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// tierReplay reads the partition's remote log from offset 0 to end, maxBytes
// a call, as a replay consumer's fetches would — through sess (one stream,
// fetching ahead) or, with sess nil, with one-off Partition.Reads — and
// returns the bytes read.
func tierReplay(ctx context.Context, p *tiering.Partition, sess *tiering.Session, end int64, maxBytes int) (int64, error) {
	var n int64
	for off := int64(0); off < end; {
		var r tiering.Records
		var err error
		if sess != nil {
			r, err = sess.Read(ctx, p, off, maxBytes)
		} else {
			r, err = p.Read(ctx, off, maxBytes)
		}
		if err != nil {
			return n, fmt.Errorf("read at %d: %w", off, err)
		}
		next := int64(-1)
		if err := r.Batches(func(h localstore.BatchHeader, _ []byte) bool { next = h.LastOffset() + 1; return true }); err != nil || next < 0 {
			return n, fmt.Errorf("read at %d: %d bytes, %v", off, r.Size, err)
		}
		n += int64(r.Size)
		off = next
	}
	return n, nil
}

// localReplay reads the same range from the local log, as a fetch of local
// data would (ReadBytes: into memory, like Partition.Read).
func localReplay(l *localstore.Log, end int64, maxBytes int) (int64, error) {
	var n int64
	for off := int64(0); off < end; {
		b, err := l.ReadBytes(off, maxBytes, end)
		if err != nil {
			return n, fmt.Errorf("local read at %d: %w", off, err)
		}
		next, err := nextOffset(b)
		if err != nil {
			return n, fmt.Errorf("local read at %d: %w", off, err)
		}
		n += int64(len(b))
		off = next
	}
	return n, nil
}

// rawReplay reads every object in order with sequential ranged GETs of
// chunkBytes, one at a time — the floor of a cold replay.
func rawReplay(ctx context.Context, store remotestore.Storage, segs []tiering.RemoteSegment, prefix string, chunkBytes int64) (int64, error) {
	buf := make([]byte, chunkBytes)
	var n int64
	for _, s := range segs {
		for pos := int64(0); pos < s.Size; pos += chunkBytes {
			l := min(chunkBytes, s.Size-pos)
			if err := getRange(ctx, store, s.LogKey(prefix), pos, buf[:l]); err != nil {
				return n, err
			}
			n += l
		}
	}
	return n, nil
}

func getRange(ctx context.Context, store remotestore.Storage, key string, pos int64, buf []byte) error {
	rc, err := store.Get(ctx, key, pos, int64(len(buf)))
	if err != nil {
		return err
	}
	_, err = io.ReadFull(rc, buf)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// nextOffset is one past the last offset of the batches in b.
func nextOffset(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty read")
	}
	next := int64(-1)
	for len(b) > 0 {
		h, err := localstore.ParseBatchHeader(b)
		if err != nil {
			return 0, err
		}
		next = h.LastOffset() + 1
		b = b[h.Size():]
	}
	return next, nil
}

// TestTieringHarnessMovesTheBytes runs the tiering benchmarks' steps on a
// tiny log against a local-directory store and checks that every replay
// returns exactly the bytes of the log, so MB/s counts what was moved.
func TestTieringHarnessMovesTheBytes(t *testing.T) {
	ctx := context.Background()
	spec := tierLogSpec{total: 2 << 20, segmentBytes: 256 << 10, batchRecords: 16, recordSize: 1024}
	l, segs := buildTierLog(t, t.TempDir(), spec)
	if len(segs) < 4 {
		t.Fatalf("%d sealed segments", len(segs))
	}
	store, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var c remotestore.Counters
	store = remotestore.WithCounters(store, &c)
	if err := rawCopy(ctx, store, "raw/", segs); err != nil {
		t.Fatal(err)
	}
	if got := c.Snapshot().Put; got != int64(len(segs)) {
		t.Fatalf("raw copy made %d PUTs for %d segments", got, len(segs))
	}
	mgr := newTierManager(t, store, 64<<10, 8<<20, 0)
	defer mgr.Close()
	p := mgr.Partition("harness", 0, l)
	if err := p.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := p.CopyOnce(ctx); err != nil || n != len(segs) {
		t.Fatalf("copied %d of %d segments: %v", n, len(segs), err)
	}
	end := p.Manifest().EndOffset()
	want := segBytes(segs)
	if end != l.LogEndOffset() {
		t.Fatalf("remote end %d, local end %d", end, l.LogEndOffset())
	}
	for name, replay := range map[string]func() (int64, error){
		"tiering": func() (int64, error) { return tierReplay(ctx, p, nil, end, 1<<20) },
		"session": func() (int64, error) {
			s := mgr.NewSession()
			defer s.Close()
			return tierReplay(ctx, p, s, end, 1<<20)
		},
		"local": func() (int64, error) { return localReplay(l, end, 1<<20) },
		"raw":   func() (int64, error) { return rawReplay(ctx, store, p.Manifest().Readable(), p.Prefix(), 64<<10) },
	} {
		if n, err := replay(); err != nil || n != want {
			t.Fatalf("%s replay: %d bytes, want %d: %v", name, n, want, err)
		}
	}
}
