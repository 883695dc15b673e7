package tiering

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Session is one consumer's remote reads: the broker opens one per client
// connection and closes it when the connection goes, which stops every fetch
// ahead made for it. Within a session each partition has one sequential
// reader (a stream) that keeps chunks in flight ahead of the reads, so a
// replay at object-store latency is not one GET round trip per chunk.
type Session struct {
	mgr *Manager
	mu  struct {
		sync.Mutex
		streams map[*Partition]*stream
		closed  bool
	}
}

// NewSession opens a session. Close it when the consumer goes.
func (m *Manager) NewSession() *Session {
	s := &Session{mgr: m}
	s.mu.streams = map[*Partition]*stream{}
	return s
}

// errStreamClosed: the stream was closed (idle, or the manager closed)
// between being looked up and being read.
var errStreamClosed = errors.New("tiering: reader closed")

// ErrClosed is returned by reads after the session or manager closed.
var ErrClosed = errors.New("tiering: closed")

// Read serves a fetch below the local log start: whole batches starting with
// the one that holds offset, at most maxBytes but at least one batch (KIP-74),
// as views of cached chunks. A read at the offset where the previous one
// ended continues the partition's stream and its fetches ahead; any other
// offset repositions it.
func (s *Session) Read(ctx context.Context, p *Partition, offset int64, maxBytes int) (Records, error) {
	return s.ReadNotify(ctx, p, offset, maxBytes, nil)
}

// ReadNotify is Read that calls waiting (once, if at all) when the read
// must wait for the bucket — a GET, memory for one, the index — before it
// can return anything, so the caller can decide not to wait for it: a read
// cancelled through ctx returns nothing and leaves the stream where it was.
func (s *Session) ReadNotify(ctx context.Context, p *Partition, offset int64, maxBytes int, waiting func()) (Records, error) {
	if waiting == nil {
		waiting = func() {}
	}
	for range 3 {
		st, err := s.stream(p)
		if err != nil {
			return Records{}, err
		}
		r, err := st.read(ctx, offset, maxBytes, waiting)
		if !errors.Is(err, errStreamClosed) {
			return r, err
		}
		s.forget(p, st)
	}
	return Records{}, ErrClosed
}

func (s *Session) stream(p *Partition) (*stream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	if st := s.mu.streams[p]; st != nil {
		return st, nil
	}
	st, err := s.mgr.openStream(p, true)
	if err != nil {
		return nil, err
	}
	s.mu.streams[p] = st
	return st, nil
}

func (s *Session) forget(p *Partition, st *stream) {
	s.mu.Lock()
	if s.mu.streams[p] == st {
		delete(s.mu.streams, p)
	}
	s.mu.Unlock()
}

// Close stops the session's streams: fetches in flight are cancelled and
// nothing more is fetched for it.
func (s *Session) Close() {
	s.mu.Lock()
	s.mu.closed = true
	all := s.mu.streams
	s.mu.streams = nil
	s.mu.Unlock()
	for _, st := range all {
		st.close()
	}
}

// Window sizes, in chunks. A stream starts with four (the chunk being read
// and three ahead) and doubles its window each time a read has to wait for a chunk,
// up to maxWindow and its fair share of the read-ahead budget: at 30 ms per
// GET and 80 MB/s per connection one 4 MiB chunk takes ~80 ms, so a reader
// draining 500 MB/s needs ~10 in flight — more than loopback ever does.
const (
	initialWindow = 4
	maxWindow     = 64
)

// stream is one sequential reader of one partition's remote log.
type stream struct {
	mgr      *Manager
	p        *Partition
	prefetch bool
	ctx      context.Context // cancelled by close: every GET of the stream
	cancel   context.CancelFunc

	readMu sync.Mutex // one read at a time; taken before mu

	mu struct {
		sync.Mutex
		closed   bool
		lastRead time.Time
		window   int
		// aheadAfterHead: fetch ahead only once items[0] has arrived.
		aheadAfterHead bool
		items          []*item // chunks in chain order; items[0] holds the read position
		ch             chain   // the chain after the last processed item
		chainErr       error   // why the chain broke (later items fail with it)
		// The read position: the next batch is at pos of seg; next is the
		// offset a sequential read asks for; batches ending below skipBelow
		// are not returned (a read positioned inside a segment).
		seg       RemoteSegment
		pos       int64
		next      int64
		skipBelow int64
		// The next chunk to fetch: segment, index, and the chain start if it
		// begins a chain (-1 if it continues the previous one); done when
		// no chunk is left.
		issueSeg  RemoteSegment
		issueK    int64
		issueFrom int64
		issueDone bool
	}
}

// item is one chunk in a stream's window.
type item struct {
	seg    RemoteSegment
	k      int64
	from   int64 // chain start position if this chunk starts a chain, else -1
	charge int64 // budget bytes held
	cancel context.CancelFunc
	ready  chan struct{} // closed once processed

	// Guarded by the stream's mu.
	arrived bool
	raw     []byte
	// cb is the buffer raw (or buf) lives in; the item holds one reference
	// from its GET's start (or its cache hit) until it is dropped and its
	// GET has returned.
	cb *chunkBuf
	// While the GET runs: how much of cb has arrived;
	// once the chunk is next in chain order, b takes its batches as they
	// come and progress is closed (and replaced) each time it takes more,
	// so a read can be answered before the whole chunk is in.
	filled    int64
	b         *builder
	progress  chan struct{}
	cached    *entry // the cache had an entry for this chunk
	processed bool
	entry     *entry
	err       error
	dropped   bool
}

func (m *Manager) openStream(p *Partition, prefetch bool) (*stream, error) {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	st := &stream{mgr: m, p: p, prefetch: prefetch && m.opts.ReadAheadBytes > 0}
	st.ctx, st.cancel = context.WithCancel(m.bgCtx)
	st.mu.window = initialWindow
	st.mu.next = -1
	st.mu.lastRead = m.opts.Now()
	m.streamsMu.Lock()
	m.streams[st] = struct{}{}
	m.streamsMu.Unlock()
	return st, nil
}

// close drops every chunk the stream holds and cancels its GETs.
func (st *stream) close() {
	st.mu.Lock()
	if st.mu.closed {
		st.mu.Unlock()
		return
	}
	st.mu.closed = true
	st.dropAllLocked()
	st.setChainLocked(chain{})
	st.mu.Unlock()
	st.cancel()
	st.mgr.streamsMu.Lock()
	delete(st.mgr.streams, st)
	st.mgr.streamsMu.Unlock()
}

// reclaimIdle closes streams that have not been read for IdleTimeout, so a
// consumer that stopped without closing its connection gives its chunks
// back when another reader needs the memory.
func (m *Manager) reclaimIdle() {
	cut := m.opts.Now().Add(-m.opts.IdleTimeout)
	m.streamsMu.Lock()
	var idle []*stream
	for st := range m.streams {
		idle = append(idle, st)
	}
	m.streamsMu.Unlock()
	for _, st := range idle {
		st.mu.Lock()
		old := st.mu.lastRead.Before(cut)
		st.mu.Unlock()
		if old {
			st.close()
		}
	}
}

// fairShare is how many chunks a stream may hold: the read-ahead budget split
// among open streams, at least one.
func (m *Manager) fairShare() int {
	m.streamsMu.Lock()
	n := max(1, len(m.streams))
	m.streamsMu.Unlock()
	return max(1, int(m.budget.capacity/m.opts.ChunkBytes)/n)
}

// position points the stream at offset: the segment that holds it and the
// batch start to scan from (the segment's start, or its offset index entry
// at or below offset — the only case that needs the index bundle).
func (st *stream) position(ctx context.Context, offset int64, waiting func()) error {
	m := st.p.Manifest()
	seg, ok := m.Find(offset)
	if !ok {
		return ErrNotRemote
	}
	pos := int64(0)
	if offset > seg.BaseOffset {
		if !st.mgr.bundleCached(seg) {
			waiting()
		}
		b, err := st.mgr.bundle(ctx, st.p.ms.prefix, seg)
		if err != nil {
			return err
		}
		pos = b.PositionFor(seg.BaseOffset, offset)
		if pos < 0 || pos >= seg.Size {
			return fmt.Errorf("%w: %s: index position %d outside the segment's %d bytes", ErrCorruptObject, seg.IndexesKey(st.p.ms.prefix), pos, seg.Size)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.mu.closed {
		return errStreamClosed
	}
	st.dropAllLocked()
	st.mu.seg, st.mu.pos, st.mu.next, st.mu.skipBelow = seg, pos, offset, offset
	st.mu.issueSeg, st.mu.issueK, st.mu.issueFrom, st.mu.issueDone = seg, pos/st.mgr.opts.ChunkBytes, pos, false
	st.mu.chainErr = nil
	return nil
}

func (st *stream) dropAllLocked() {
	for _, it := range st.mu.items {
		st.dropLocked(it)
	}
	st.mu.items = nil
}

// dropLocked gives up a chunk: its GET is cancelled, and its budget is
// released now or, if the GET is still running, when it returns.
func (st *stream) dropLocked(it *item) {
	if it.dropped {
		return
	}
	it.dropped = true
	if it.cancel != nil {
		it.cancel()
	}
	if it.arrived {
		st.releaseLocked(it)
	}
}

// releaseLocked gives back what a dropped item holds once its GET (if any)
// has returned: its budget and its buffer.
func (st *stream) releaseLocked(it *item) {
	st.mgr.budget.release(it.charge)
	if it.cb != nil {
		it.cb.unref()
		it.cb = nil
	}
}

// setChainLocked moves the chain on, holding a reference to the buffer its
// carried bytes view (the chunk they are in may be popped before the next
// chunk, which finishes their batch, has arrived).
func (st *stream) setChainLocked(ch chain) {
	if ch.buf != nil {
		ch.buf.ref()
	}
	if old := st.mu.ch.buf; old != nil {
		old.unref()
	}
	st.mu.ch = ch
}

// chunks is how many chunks a segment has.
func (st *stream) chunks(seg RemoteSegment) int64 {
	cs := st.mgr.opts.ChunkBytes
	return (seg.Size + cs - 1) / cs
}

// fillLocked issues chunks until the window is full. With wait it makes
// sure the stream holds at least one chunk, waiting for memory if it must;
// other chunks are fetched ahead only with memory that is free, and not
// before the first chunk of a (re)positioned stream has arrived: its GET
// then has the link and MinIO to itself, so a cold fetch answers after one
// GET, not after several sharing the bandwidth. Called and returns with
// st.mu held (released while waiting).
func (st *stream) fillLocked(ctx context.Context, wait bool, waiting func()) error {
	if len(st.mu.items) == 0 && wait && !st.mu.issueDone && !st.mu.closed {
		seg, k := st.mu.issueSeg, st.mu.issueK
		charge := min(st.mgr.opts.ChunkBytes, seg.Size-k*st.mgr.opts.ChunkBytes)
		if !st.mgr.budget.tryAcquire(charge) {
			waiting()
			st.mu.Unlock()
			err := st.mgr.budget.acquire(ctx, charge, st.mgr.reclaimIdle)
			st.mu.Lock()
			if err != nil {
				return err
			}
		}
		if st.mu.closed || len(st.mu.items) > 0 || st.mu.issueSeg.ID != seg.ID || st.mu.issueK != k {
			st.mgr.budget.release(charge) // moved, filled or closed meanwhile
		} else {
			st.mu.aheadAfterHead = true
			st.issueLocked(charge)
		}
	}
	if st.mu.closed {
		return errStreamClosed
	}
	st.aheadLocked()
	return nil
}

// aheadLocked fetches ahead: more chunks while the window and free memory
// allow. It never waits.
func (st *stream) aheadLocked() {
	if st.mu.aheadAfterHead {
		if len(st.mu.items) == 0 || !st.mu.items[0].processed {
			return // the head's GET goes first (processLocked calls back)
		}
		st.mu.aheadAfterHead = false
	}
	for !st.mu.issueDone && !st.mu.closed && len(st.mu.items) > 0 {
		want := 1
		if st.prefetch {
			want = min(st.mu.window, st.mgr.fairShare(), maxWindow)
		}
		if len(st.mu.items) >= want {
			return
		}
		charge := min(st.mgr.opts.ChunkBytes, st.mu.issueSeg.Size-st.mu.issueK*st.mgr.opts.ChunkBytes)
		if !st.mgr.budget.tryAcquire(charge) {
			return
		}
		st.issueLocked(charge)
	}
}

// issueLocked adds the next chunk to the window: from the cache if it is
// there, else by a GET in the background.
func (st *stream) issueLocked(charge int64) {
	seg, k, from := st.mu.issueSeg, st.mu.issueK, st.mu.issueFrom
	it := &item{seg: seg, k: k, from: from, charge: charge, ready: make(chan struct{}), progress: make(chan struct{})}
	st.mu.items = append(st.mu.items, it)
	// The next one after it: the following chunk, or the next segment's
	// first (its chain starts at 0: no index needed).
	if k+1 < st.chunks(seg) {
		st.mu.issueK, st.mu.issueFrom = k+1, -1
	} else if nseg, ok := st.p.Manifest().Find(seg.LastOffset + 1); ok && nseg.BaseOffset > seg.LastOffset {
		st.mu.issueSeg, st.mu.issueK, st.mu.issueFrom = nseg, 0, 0
	} else {
		st.mu.issueDone = true
	}
	if e, ok := st.mgr.cache.Get(entryKey(seg.ID, k)); ok && (e.buf == nil || e.buf.tryRef()) {
		// tryRef fails only if the cache let the entry go meanwhile and
		// its buffer went back to the pool: a miss.
		st.mgr.metrics.cacheHits.Inc()
		it.arrived, it.raw, it.cached, it.cb = true, e.raw, e, e.buf
		st.processLocked()
		return
	}
	st.mgr.metrics.cacheMisses.Inc()
	st.mgr.closeMu.RLock()
	defer st.mgr.closeMu.RUnlock()
	if st.mgr.closed {
		it.arrived, it.err = true, ErrClosed
		st.processLocked()
		return
	}
	ctx, cancel := context.WithCancel(st.ctx)
	it.cancel = cancel
	st.mgr.bg.Add(1)
	st.mgr.inflightGets.Add(1)
	key := seg.LogKey(st.p.ms.prefix)
	cb := st.mgr.bufs.get(min(st.mgr.opts.ChunkBytes, seg.Size-k*st.mgr.opts.ChunkBytes))
	it.cb = cb
	go func() {
		defer st.mgr.bg.Done()
		err := st.mgr.fetchChunkInto(ctx, key, k, seg.Size, cb.b, func(n int64) {
			st.mu.Lock()
			defer st.mu.Unlock()
			if it.dropped {
				return
			}
			it.filled = n
			st.processLocked()
		})
		st.mgr.inflightGets.Add(-1)
		st.mgr.budget.poke()
		cancel()
		st.mu.Lock()
		defer st.mu.Unlock()
		it.arrived = true
		if it.dropped {
			st.releaseLocked(it)
			return
		}
		if err != nil {
			it.err = err
		} else {
			it.raw = cb.b
		}
		st.processLocked()
	}()
}

// processLocked turns arrived chunks into entries, in chain order: this is
// where each batch is CRC-checked, once, as its chunk enters the cache.
func (st *stream) processLocked() {
	cs := st.mgr.opts.ChunkBytes
	for _, it := range st.mu.items {
		if it.processed {
			continue
		}
		if !it.arrived {
			st.feedLocked(it)
			return
		}
		it.processed = true
		if it.from >= 0 {
			st.setChainLocked(chain{pos: it.from})
			st.mu.chainErr = nil
		}
		switch {
		case it.err != nil:
		case st.mu.chainErr != nil:
			it.err = st.mu.chainErr
		case it.cached != nil && it.cached.start == st.mu.ch.pos && it.cached.k*cs <= st.mu.ch.pos+int64(len(st.mu.ch.carry)):
			// Built from the same chain before: nothing to check again.
			it.entry = it.cached
			next := chain{pos: it.entry.end, carry: it.entry.tail(cs)}
			if len(next.carry) > 0 {
				next.buf = it.cb
			}
			st.setChainLocked(next)
		default:
			b := it.b // built while the GET ran, over the same buffer
			if b == nil {
				var err error
				if b, err = newBuilder(it.seg.LogKey(st.p.ms.prefix), it.seg.ID, it.k, cs, it.seg.Size, it.raw, st.mu.ch); err != nil {
					it.err = err
					break
				}
				b.e.buf = it.cb
			}
			if err := b.feed(int64(len(it.raw))); err != nil {
				it.err = err
				break
			}
			e, next, err := b.finish()
			if err != nil {
				it.err = err
				break
			}
			it.entry = e
			st.setChainLocked(next)
			if len(e.ends) > 0 {
				st.mgr.putEntry(e)
			}
		}
		if it.err != nil {
			st.mu.chainErr = it.err
		}
		it.raw, it.cached, it.b = nil, nil, nil
		close(it.ready)
	}
	if st.mu.aheadAfterHead && len(st.mu.items) > 0 && st.mu.items[0].processed {
		st.aheadLocked()
	}
}

// feedLocked gives the next chunk in chain order, whose GET is still
// running, the bytes that have arrived: its whole batches become readable
// (CRC-checked as they are taken — the same single check the chunk gets
// when it arrives whole). An inconsistency stays in the builder and fails
// the chunk when it has arrived.
func (st *stream) feedLocked(it *item) {
	if it.dropped || it.filled == 0 || it.err != nil {
		return
	}
	if it.b == nil {
		ch := st.mu.ch
		if it.from >= 0 {
			ch = chain{pos: it.from}
		} else if st.mu.chainErr != nil {
			return
		}
		b, err := newBuilder(it.seg.LogKey(st.p.ms.prefix), it.seg.ID, it.k, st.mgr.opts.ChunkBytes, it.seg.Size, it.cb.b, ch)
		if err != nil {
			return // processLocked meets it again when the chunk is in
		}
		b.e.buf = it.cb
		it.b = b
	}
	before := len(it.b.e.ends)
	if it.b.feed(it.filled) == nil && len(it.b.e.ends) > before {
		close(it.progress)
		it.progress = make(chan struct{})
	}
}

func entryKey(segID string, k int64) string { return fmt.Sprintf("%s/%d", segID, k) }

func (m *Manager) putEntry(e *entry) {
	m.closeMu.RLock()
	defer m.closeMu.RUnlock()
	if m.closed {
		return
	}
	if e.buf != nil {
		e.buf.ref() // the cache's; OnExit gives it back
	}
	if !m.cache.Set(entryKey(e.segID, e.k), e, e.cost()) && e.buf != nil {
		e.buf.unref() // dropped at once: OnExit is not called
	}
}

// read is Session.Read on this stream.
func (st *stream) read(ctx context.Context, offset int64, maxBytes int, waiting func()) (Records, error) {
	st.readMu.Lock()
	defer st.readMu.Unlock()
	if _, ok := st.p.Manifest().Find(offset); !ok {
		return Records{}, ErrNotRemote
	}
	st.mu.Lock()
	if st.mu.closed {
		st.mu.Unlock()
		return Records{}, errStreamClosed
	}
	st.mu.lastRead = st.mgr.opts.Now()
	sequential := offset == st.mu.next && st.mu.chainErr == nil
	st.mu.Unlock()
	if !sequential {
		if err := st.position(ctx, offset, waiting); err != nil {
			return Records{}, err
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	r, stalled, err := st.collectLocked(ctx, maxBytes, waiting)
	if err != nil {
		if !errors.Is(err, errStreamClosed) && ctx.Err() == nil {
			// The next read starts over: a failed GET is retried, a
			// corrupt chunk fails again.
			st.mu.next = -1
		}
		return Records{}, err
	}
	if stalled && st.mu.window < maxWindow {
		st.mu.window *= 2
	}
	if r.Size > 0 {
		// The first answer of a (re)positioned stream is out: fetch ahead
		// now, even if the rest of its head chunk is still arriving.
		st.mu.aheadAfterHead = false
	}
	st.mgr.metrics.bytesRead.Add(float64(r.Size))
	st.aheadLocked() // fetching ahead is best effort
	return r, nil
}

// collectLocked gathers whole batches from the read position: at least one
// (waiting for its chunk if need be), then whatever else is already checked,
// up to maxBytes. A chunk still arriving is read from once it holds enough
// checked batches to fill the read, so a cold read waits for the bytes it
// returns, not for the whole chunk. stalled reports whether it had to wait.
func (st *stream) collectLocked(ctx context.Context, maxBytes int, waiting func()) (r Records, stalled bool, err error) {
	for {
		if r.Size == 0 || st.prefetch {
			if err := st.fillLocked(ctx, r.Size == 0, waiting); err != nil {
				return r, stalled, err
			}
		}
		if len(st.mu.items) == 0 {
			return r, stalled, nil // the end of the remote log
		}
		it := st.mu.items[0]
		if it.processed && it.err != nil {
			if r.Size > 0 {
				return r, stalled, nil // the good batches first; the next read fails
			}
			return Records{}, stalled, it.err
		}
		e := it.entry
		if !it.processed && it.b != nil && it.b.err == nil && st.enoughLocked(it, int64(maxBytes-r.Size)) {
			e = it.b.e // still arriving, but holds what this read needs
		}
		if e != nil {
			if it.seg.ID != st.mu.seg.ID {
				st.mu.seg, st.mu.pos = it.seg, it.from // into the next segment
			}
			if st.mu.pos < e.end && len(e.ends) > 0 {
				full, err := st.takeLocked(it, e, &r, maxBytes)
				if err != nil || full {
					return r, stalled, err
				}
			}
			if it.processed {
				st.popLocked()
				continue
			}
		}
		if r.Size > 0 {
			return r, stalled, nil
		}
		stalled = true
		waiting()
		ready, progress := it.ready, it.progress
		st.mu.Unlock()
		select {
		case <-ready:
		case <-progress:
		case <-ctx.Done():
		}
		st.mu.Lock()
		if st.mu.closed {
			return r, stalled, errStreamClosed
		}
		if err := ctx.Err(); err != nil {
			return r, stalled, err
		}
	}
}

// enoughLocked reports whether the chunk still arriving at items[0] holds
// checked batches from the read position of at least want bytes.
func (st *stream) enoughLocked(it *item, want int64) bool {
	pos := st.mu.pos
	if it.seg.ID != st.mu.seg.ID {
		pos = it.from
	}
	have := it.b.e.end - pos
	return have > 0 && have >= want
}

// takeLocked adds e's batches from the read position to r, up to maxBytes;
// full reports that r is full.
func (st *stream) takeLocked(it *item, e *entry, r *Records, maxBytes int) (full bool, err error) {
	i := e.batchAt(st.mu.pos)
	if i < 0 {
		return false, fmt.Errorf("tiering: %s chunk %d: read position %d is not a batch start", it.seg.LogKey(st.p.ms.prefix), e.k, st.mu.pos)
	}
	runFrom := int64(-1)
	for ; i < len(e.ends); i++ {
		start, end := e.batchStart(i), e.ends[i]
		if e.lastOffsets[i] < st.mu.skipBelow {
			st.mu.pos = end
			continue
		}
		if r.Size > 0 && r.Size+int(end-start) > maxBytes {
			full = true
			break
		}
		if runFrom < 0 {
			runFrom = start
		}
		r.Size += int(end - start)
		st.mu.pos, st.mu.next = end, e.lastOffsets[i]+1
		if r.Size >= maxBytes {
			full = true
			break
		}
	}
	if runFrom >= 0 {
		r.Parts = e.bytes(st.mgr.opts.ChunkBytes, runFrom, st.mu.pos, r.Parts)
		r.hold(e.buf)
	}
	return full, nil
}

// popLocked is done with items[0].
func (st *stream) popLocked() {
	it := st.mu.items[0]
	st.mu.items[0] = nil
	st.mu.items = st.mu.items[1:]
	st.dropLocked(it)
}
