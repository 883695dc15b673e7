package tiering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/remotestore"
)

// gatedStore holds every GET of a .log until the test lets that chunk
// through (openAll lets everything through), and records the chunks asked
// for, so tests can see which chunks a reader fetches ahead without timing
// anything.
type gatedStore struct {
	remotestore.Storage

	mu struct {
		sync.Mutex
		gets  []string
		gates map[string]chan struct{}
		open  bool
	}
}

func newGatedStore(s remotestore.Storage) *gatedStore {
	g := &gatedStore{Storage: s}
	g.mu.gates = map[string]chan struct{}{}
	return g
}

func (g *gatedStore) gateLocked(name string) chan struct{} {
	c := g.mu.gates[name]
	if c == nil {
		c = make(chan struct{})
		if g.mu.open {
			close(c)
		}
		g.mu.gates[name] = c
	}
	return c
}

func (g *gatedStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	name := fmt.Sprintf("%s@%d", key, off)
	g.mu.Lock()
	g.mu.gets = append(g.mu.gets, name)
	gate := g.gateLocked(name)
	g.mu.Unlock()
	if strings.HasSuffix(key, ".log") {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Storage.Get(ctx, key, off, n)
}

// let lets chunk off of key through.
func (g *gatedStore) let(key string, off int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.gateLocked(fmt.Sprintf("%s@%d", key, off))
	select {
	case <-c:
	default:
		close(c)
	}
}

func (g *gatedStore) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.open = true
	for _, c := range g.mu.gates {
		select {
		case <-c:
		default:
			close(c)
		}
	}
}

func (g *gatedStore) gets() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.mu.gets...)
}

// remoteLog is a local log copied to the bucket: segs segments of
// segBytes, batches of 5 records of 200-byte values.
func remoteLog(t *testing.T, mgr *Manager, store remotestore.Storage, topic string, segBytes int64, records int) (*Partition, *localstore.Log) {
	t.Helper()
	l, err := localstore.Open(t.TempDir(), localstore.Config{SegmentBytes: segBytes, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for l.LogEndOffset() < int64(records) {
		if _, err := l.Append(testBatch(5, 1000+l.LogEndOffset(), 200), 0, false); err != nil {
			t.Fatal(err)
		}
	}
	l.Roll()
	l.Flush()
	p := mgr.Partition(topic, 0, l)
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.CopyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p, l
}

func testManager(t *testing.T, store remotestore.Storage, opts Options) *Manager {
	t.Helper()
	opts.Store = store
	opts.ChunkBytes = 64 << 10
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := NewManager(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// replay reads p through s from offset 0 to end, checking every byte against
// the local log, and calls each after every read.
func replay(t *testing.T, ctx context.Context, s *Session, p *Partition, l *localstore.Log, end int64, each func()) {
	t.Helper()
	for off := int64(0); off < end; {
		r, err := s.Read(ctx, p, off, 100<<10)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		got := r.Bytes()
		if want := localBytes(t, l, off, len(got), end); !bytes.Equal(got, want) {
			t.Fatalf("remote bytes at %d differ from the local log (%d vs %d bytes)", off, len(got), len(want))
		}
		if err := r.Batches(func(h localstore.BatchHeader, _ []byte) bool { off = h.LastOffset() + 1; return true }); err != nil {
			t.Fatal(err)
		}
		r.Release()
		if each != nil {
			each()
		}
	}
}

// localBytes is n bytes of whole batches of l from off, across segments.
func localBytes(t *testing.T, l *localstore.Log, off int64, n int, end int64) []byte {
	t.Helper()
	var out []byte
	for len(out) < n && off < end {
		b, err := l.ReadBytes(off, n-len(out), end)
		if err != nil || len(b) == 0 {
			t.Fatalf("local read at %d: %v", off, err)
		}
		out = append(out, b...)
		next, err := lastOffsetIn(b)
		if err != nil {
			t.Fatal(err)
		}
		off = next + 1
	}
	return out
}

func lastOffsetIn(b []byte) (int64, error) {
	last := int64(-1)
	for len(b) > 0 {
		h, err := localstore.ParseBatchHeader(b)
		if err != nil {
			return 0, err
		}
		last, b = h.LastOffset(), b[h.Size():]
	}
	return last, nil
}

// TestStreamFetchesAheadAcrossSegments: while a consumer reads one chunk the
// stream already has the next ones in flight, and near a segment's end the
// next segment's first chunk — fetched from position 0, with no index
// bundle needed for it.
func TestStreamFetchesAheadAcrossSegments(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := newGatedStore(local)
	mgr := testManager(t, g, Options{})
	p, _ := remoteLog(t, mgr, local, "ahead", 150<<10, 3000) // 3 chunks a segment
	segs := p.Manifest().Readable()
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	s := mgr.NewSession()
	defer s.Close()
	// Let exactly one GET through: the chunk the first read waits for.
	g.let(segs[0].LogKey(p.Prefix()), 0)
	if _, err := s.Read(ctx, p, 0, 1); err != nil {
		t.Fatal(err)
	}
	// The read returned: more chunks are on their way, beyond the first.
	if st := mgr.Stats(); st.InflightGets < 1 || st.HeldBytes <= mgr.opts.ChunkBytes {
		t.Fatalf("no read-ahead after the first read: %+v", st)
	}
	g.openAll()
	// Read segment 0 to its last chunk; segment 1's first chunk must have
	// been asked for before any read of segment 1.
	seg0, seg1 := segs[0], segs[1]
	off := int64(0)
	for off <= seg0.LastOffset {
		r, err := s.Read(ctx, p, off, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		r.Batches(func(h localstore.BatchHeader, _ []byte) bool { off = h.LastOffset() + 1; return true })
	}
	// The stream issued it under its lock; the GET itself starts on its
	// own goroutine, so wait for the store to see it (nothing else reads).
	want := seg1.LogKey(p.Prefix()) + "@0"
	found := false
	for deadline := time.Now().Add(10 * time.Second); !found && time.Now().Before(deadline); {
		for _, k := range g.gets() {
			found = found || k == want
		}
		if !found {
			time.Sleep(time.Millisecond)
		}
	}
	for _, k := range g.gets() {
		if strings.HasSuffix(k, seg1.IndexesKey(p.Prefix())+"@0") {
			t.Errorf("the index bundle of segment 1 was fetched for a sequential read: %v", k)
		}
	}
	if !found {
		t.Fatalf("segment 1's first chunk was not fetched ahead: %v", g.gets())
	}
}

// TestStoppedConsumerLeavesNoPrefetch: a consumer that stops mid-replay and
// goes (its session closes) leaves nothing in flight and no memory held; a
// consumer that stops without going fetches at most its window and then
// nothing more.
func TestStoppedConsumerLeavesNoPrefetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := newGatedStore(local)
	mgr := testManager(t, g, Options{})
	p, _ := remoteLog(t, mgr, local, "stop", 1<<20, 10000) // ~2.2 MB: ~35 chunks
	s := mgr.NewSession()
	g.let(p.Manifest().Readable()[0].LogKey(p.Prefix()), 0)
	if _, err := s.Read(ctx, p, 0, 1); err != nil {
		t.Fatal(err)
	}
	st := mgr.Stats()
	if st.InflightGets == 0 || st.HeldBytes == 0 || st.Streams != 1 {
		t.Fatalf("after the first read nothing is fetched ahead: %+v", st)
	}
	// The consumer goes: everything in flight is cancelled and released.
	s.Close()
	if err := mgr.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if st := mgr.Stats(); st.Streams != 0 || st.InflightGets != 0 || st.HeldBytes != 0 {
		t.Fatalf("after the consumer went: %+v", st)
	}
	before := len(g.gets())
	g.openAll() // nothing is waiting to go through
	if got := len(g.gets()); got != before {
		t.Fatalf("GETs went on after the consumer went: %d then %d", before, got)
	}

	// A consumer that stops reading but stays: its window fills and then
	// nothing more is asked for.
	s2 := mgr.NewSession()
	defer s2.Close()
	if _, err := s2.Read(ctx, p, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := mgr.waitUntil(ctx, func(st Stats) bool { return st.InflightGets == 0 }); err != nil {
		t.Fatal(err)
	}
	n := len(g.gets())
	held := mgr.Stats().HeldBytes
	if held > int64(maxWindow)*mgr.opts.ChunkBytes || held > mgr.opts.ReadAheadBytes {
		t.Fatalf("a stopped reader holds %d bytes", held)
	}
	// Nothing more starts: there is no goroutine of the stream left
	// (InflightGets is 0) and only a read issues new GETs.
	if st := mgr.Stats(); st.InflightGets != 0 || len(g.gets()) != n {
		t.Fatalf("a stopped reader kept fetching: %+v, %d GETs then %d", st, n, len(g.gets()))
	}
}

// TestCorruptChunkMidReplay: a byte flipped in a later chunk of a segment is
// an error to the reader when it gets there (and on every retry), after all
// the good bytes before it; no byte of the bad batch is ever returned.
func TestCorruptChunkMidReplay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	local, err := remotestore.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	mgr := testManager(t, local, Options{})
	p, l := remoteLog(t, mgr, local, "bad", 1<<20, 4000)
	seg := p.Manifest().Readable()[0]
	path := dir + "/" + seg.LogKey(p.Prefix())
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	badAt := int64(3*(64<<10) + 1000) // inside chunk 3
	b[badAt] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	s := mgr.NewSession()
	defer s.Close()
	var served int64
	off := int64(0)
	for {
		r, err := s.Read(ctx, p, off, 16<<10)
		if err != nil {
			if !errors.Is(err, ErrCorruptObject) {
				t.Fatalf("read at %d: %v", off, err)
			}
			break
		}
		got := r.Bytes()
		if want := localBytes(t, l, off, len(got), seg.LastOffset+1); !bytes.Equal(got, want) {
			t.Fatalf("bytes at offset %d differ from the log", off)
		}
		served += int64(len(got))
		r.Batches(func(h localstore.BatchHeader, _ []byte) bool { off = h.LastOffset() + 1; return true })
	}
	if served > badAt {
		t.Fatalf("served %d bytes, past the corrupt byte at %d", served, badAt)
	}
	for range 2 {
		if _, err := s.Read(ctx, p, off, 16<<10); !errors.Is(err, ErrCorruptObject) {
			t.Fatalf("retry at %d: %v", off, err)
		}
	}
}

// TestReaderMemoryBounded: sixteen consumers replaying sixteen partitions at
// once through a small cache and read-ahead budget get every byte right, and
// the readers' own accounting never goes past the bounds.
func TestReaderMemoryBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const cs = 64 << 10
	mgr := testManager(t, local, Options{CacheBytes: 8 * cs, ReadAheadBytes: 8 * cs})
	type part struct {
		p *Partition
		l *localstore.Log
	}
	var parts []part
	for i := range 16 {
		p, l := remoteLog(t, mgr, local, fmt.Sprintf("bounded-%d", i), 256<<10, 2500)
		parts = append(parts, part{p, l})
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		worst   Stats
		samples int
	)
	check := func() {
		st := mgr.Stats()
		mu.Lock()
		defer mu.Unlock()
		samples++
		if st.CacheBytes > st.CacheMaxBytes || st.HeldBytes > st.ReadAheadBytes {
			t.Errorf("over the bound: %+v", st)
		}
		if st.CacheBytes+st.HeldBytes > worst.CacheBytes+worst.HeldBytes {
			worst = st
		}
	}
	for _, pt := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := mgr.NewSession()
			defer s.Close()
			replay(t, ctx, s, pt.p, pt.l, pt.p.Manifest().EndOffset(), check)
		}()
	}
	wg.Wait()
	st := mgr.Stats()
	if st.MaxHeldBytes > st.ReadAheadBytes || st.MaxHeldBytes == 0 {
		t.Fatalf("held at most %d bytes against a bound of %d", st.MaxHeldBytes, st.ReadAheadBytes)
	}
	t.Logf("%d samples; worst cache+held %d of %d; max held %d", samples, worst.CacheBytes+worst.HeldBytes, st.CacheMaxBytes+st.ReadAheadBytes, st.MaxHeldBytes)
	if err := mgr.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// trickleStore delivers the first hold bytes of every .log GET at once and
// the rest only after release is closed: a GET whose body is still on its way.
type trickleStore struct {
	remotestore.Storage
	hold    int64
	release chan struct{}
}

func (s *trickleStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := s.Storage.Get(ctx, key, off, n)
	if err != nil || !strings.HasSuffix(key, ".log") {
		return rc, err
	}
	return &trickleBody{ReadCloser: rc, left: s.hold, release: s.release, ctx: ctx}, nil
}

type trickleBody struct {
	io.ReadCloser
	left    int64
	release chan struct{}
	ctx     context.Context
}

func (b *trickleBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		select {
		case <-b.release:
			b.left = -1
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if b.left > 0 && int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
	}
	return n, err
}

// TestColdReadAnsweredWhileChunkArrives: a cold read is answered from the
// first bytes of its chunk's GET, once they hold the batches it returns, while
// the rest of the chunk is still on its way — and the replay that follows,
// reading the rest of that chunk, gets every byte right.
func TestColdReadAnsweredWhileChunkArrives(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := &trickleStore{Storage: local, hold: 24 << 10, release: make(chan struct{})}
	mgr := testManager(t, ts, Options{})
	p, l := remoteLog(t, mgr, local, "trickle", 1<<20, 3000)
	end := p.Manifest().EndOffset()
	s := mgr.NewSession()
	defer s.Close()
	// 24 KiB of the 64 KiB chunk arrive; the read wants 8 KiB. If it
	// waited for the whole chunk it would wait until the context ends.
	r, err := s.Read(ctx, p, 0, 8<<10)
	if err != nil {
		t.Fatalf("cold read with a third of its chunk in: %v", err)
	}
	got := r.Bytes()
	if len(got) == 0 || len(got) > 24<<10 {
		t.Fatalf("read %d bytes from the first 24 KiB of the chunk", len(got))
	}
	if want := localBytes(t, l, 0, len(got), end); !bytes.Equal(got, want) {
		t.Fatal("bytes from the arriving chunk differ from the log")
	}
	if st := mgr.Stats(); st.InflightGets == 0 {
		t.Fatalf("the chunk's GET is no longer running: %+v", st)
	}
	close(ts.release)
	var next int64
	r.Batches(func(h localstore.BatchHeader, _ []byte) bool { next = h.LastOffset() + 1; return true })
	for next < end {
		r, err := s.Read(ctx, p, next, 32<<10)
		if err != nil {
			t.Fatal(err)
		}
		got := r.Bytes()
		if want := localBytes(t, l, next, len(got), end); !bytes.Equal(got, want) {
			t.Fatalf("bytes at offset %d differ from the log", next)
		}
		r.Batches(func(h localstore.BatchHeader, _ []byte) bool { next = h.LastOffset() + 1; return true })
	}
}

// TestChunkBuffersReusedNeverWhileViewed: chunk buffers go back to the pool
// and are reused, but never while records still view them: a consumer that
// keeps the last few reads unreleased (responses still being written) while
// the cache turns over many times finds their bytes unchanged; nothing is
// released more often than it was referenced.
func TestChunkBuffersReusedNeverWhileViewed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	local, err := remotestore.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const cs = 64 << 10
	mgr := testManager(t, local, Options{CacheBytes: 4 * cs, ReadAheadBytes: 4 * cs})
	p, l := remoteLog(t, mgr, local, "reuse", 512<<10, 12000) // ~40 chunks
	end := p.Manifest().EndOffset()
	s := mgr.NewSession()
	defer s.Close()
	type kept struct {
		r    Records
		off  int64
		want []byte
	}
	var window []kept
	check := func(k kept) {
		if got := k.r.Bytes(); !bytes.Equal(got, k.want) {
			t.Fatalf("records read at %d changed while unreleased", k.off)
		}
		k.r.Release()
	}
	for off := int64(0); off < end; {
		r, err := s.Read(ctx, p, off, 24<<10)
		if err != nil {
			t.Fatal(err)
		}
		got := r.Bytes()
		want := localBytes(t, l, off, len(got), end)
		if !bytes.Equal(got, want) {
			t.Fatalf("bytes at %d differ from the log", off)
		}
		window = append(window, kept{r, off, want})
		if len(window) > 12 { // more than the cache and read-ahead hold
			check(window[0])
			window = window[1:]
		}
		r.Batches(func(h localstore.BatchHeader, _ []byte) bool { off = h.LastOffset() + 1; return true })
	}
	for _, k := range window {
		check(k)
	}
	s.Close()
	if err := mgr.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	st := mgr.Stats()
	if st.BuffersOverReleased != 0 {
		t.Fatalf("%d chunk buffers released more often than referenced", st.BuffersOverReleased)
	}
	if st.BuffersReused == 0 || st.BuffersAllocated >= st.BuffersReused+st.BuffersAllocated {
		t.Fatalf("no chunk buffer was reused: %+v", st)
	}
	t.Logf("chunk buffers: %d allocated, %d reused, %d free", st.BuffersAllocated, st.BuffersReused, st.BuffersFree)
}
