package tiering

import (
	"sync"
	"sync/atomic"
)

// A chunk's bytes live in a chunkBuf, reused from chunk to chunk: a fresh
// 4 MiB buffer is 1,024 page faults when a GET first writes into it (about
// 10 µs each on the VMs we run on — more CPU than the copy itself), and Go
// hands large allocations back to the kernel often enough that most chunks
// landed on fresh pages. A reused buffer's pages are already mapped.
//
// A chunkBuf is counted: one reference for each holder — the stream item
// whose GET fills it or that reads it, the chunk cache, the chain carrying
// the start of a batch that runs into the next chunk, and every Records
// (a Fetch response being written) that views it. The last release returns
// it to the pool. A holder that forgets to release only leaves the buffer to
// the garbage collector; nothing is reused while anything can still see it.
type chunkBuf struct {
	b    []byte // cap = the pool's chunk size
	refs atomic.Int32
	pool *bufPool
}

// ref adds a reference; the caller already holds one.
func (c *chunkBuf) ref() { c.refs.Add(1) }

// tryRef adds a reference unless the buffer has already gone back to the
// pool (a cache lookup racing the cache's eviction).
func (c *chunkBuf) tryRef() bool {
	for {
		n := c.refs.Load()
		if n <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// unref drops a reference; the last one returns the buffer to the pool.
func (c *chunkBuf) unref() {
	switch n := c.refs.Add(-1); {
	case n == 0:
		c.pool.put(c)
	case n < 0:
		// Released more often than referenced: a bug. Count it (tests
		// assert none) and never reuse this buffer again.
		c.pool.overReleased.Add(1)
	}
}

// bufPool keeps up to max free chunk buffers.
type bufPool struct {
	size int64
	max  int

	mu   sync.Mutex
	free [][]byte

	allocated, reused, overReleased atomic.Int64
}

func newBufPool(size int64, max int) *bufPool { return &bufPool{size: size, max: max} }

// get returns a buffer of n ≤ size bytes with one reference. Every get is
// a new chunkBuf around the bytes: a holder of an old one (an entry the
// cache has just let go) can never take a reference to bytes reused since.
func (p *bufPool) get(n int64) *chunkBuf {
	p.mu.Lock()
	var b []byte
	if k := len(p.free); k > 0 {
		b = p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
	}
	p.mu.Unlock()
	if b == nil {
		p.allocated.Add(1)
		b = make([]byte, p.size)
		adviseHugePages(b)
	} else {
		p.reused.Add(1)
	}
	c := &chunkBuf{b: b[:n], pool: p}
	c.refs.Store(1)
	return c
}

func (p *bufPool) put(c *chunkBuf) {
	b := c.b[:cap(c.b)]
	if int64(len(b)) != p.size {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.max {
		p.free = append(p.free, b)
	}
}

// freeBuffers is how many buffers wait in the pool.
func (p *bufPool) freeBuffers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.free)
}
