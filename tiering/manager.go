package tiering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-broker/strata/remotestore"
)

// Options configures a Manager.
type Options struct {
	Store remotestore.Storage
	// ChunkBytes is remote.fetch.chunk.bytes: the unit of ranged GETs and of
	// the cache.
	ChunkBytes int64
	// CacheBytes bounds the chunk cache (remote.log.cache.bytes).
	CacheBytes int64
	// ReadAheadBytes bounds what readers hold outside the cache: chunks being
	// fetched (the one a reader waits for and those fetched ahead) and
	// fetched chunks not yet read past. Chunk cache plus this is the reader's
	// whole memory (Stats); -1 turns read-ahead off (only the chunk a reader
	// waits for is fetched).
	ReadAheadBytes int64
	// IdleTimeout is how long a reader that has stopped reading keeps its
	// fetched-ahead chunks while others wait for memory.
	IdleTimeout time.Duration
	// ManifestKeep is how many entries the manifest head keeps before
	// spilling older finished ones into an immutable part.
	ManifestKeep int
	Now          func() time.Time
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// Defaults for Options.
const (
	DefaultChunkBytes     = 4 << 20
	DefaultCacheBytes     = 256 << 20
	DefaultReadAheadBytes = 128 << 20
	DefaultIdleTimeout    = 30 * time.Second
)

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.ReadAheadBytes == 0 {
		o.ReadAheadBytes = DefaultReadAheadBytes
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.ManifestKeep <= 0 {
		o.ManifestKeep = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports unusable options.
func (o *Options) Validate() error {
	if o.Store == nil {
		return errors.New("tiering: no object store")
	}
	if o.ChunkBytes < 64<<10 {
		return fmt.Errorf("tiering: chunk size %d is below 64 KiB", o.ChunkBytes)
	}
	if o.ReadAheadBytes > 0 && o.ReadAheadBytes < o.ChunkBytes {
		return fmt.Errorf("tiering: read-ahead bound %d is below one chunk (%d)", o.ReadAheadBytes, o.ChunkBytes)
	}
	return nil
}

// readAheadOff: with read-ahead off a reader still needs memory for the one
// chunk it waits for.
func (o *Options) readerBytes() int64 {
	if o.ReadAheadBytes < 0 {
		return o.ChunkBytes
	}
	return o.ReadAheadBytes
}

// Manager holds what a broker's tiered partitions share: the object store,
// the chunk cache, the readers' memory budget and the metrics.
//
// Lock order: stream.readMu → stream.mu → budget.mu; Manager.streamsMu is
// never held while a stream lock is taken.
type Manager struct {
	opts    Options
	cache   *ristretto.Cache[string, *entry]
	bufs    *bufPool
	budget  *budget
	metrics *tierMetrics

	// bg tracks chunk fetches; Close cancels and waits for them before
	// closing the cache (a Set on a closed ristretto cache panics).
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// closeMu guards closed: cache writes and new fetches hold it shared.
	closeMu sync.RWMutex
	closed  bool

	inflightGets atomic.Int64

	streamsMu sync.Mutex
	streams   map[*stream]struct{}

	bundleMu sync.Mutex
	bundles  map[string]*Bundle
}

// freeChunkBuffers is how many free chunk buffers the pool keeps: enough
// for a replay's turnover (a buffer comes free as the cache evicts one and
// a GET takes one), little memory beside the cache's and the readers'.
const freeChunkBuffers = 16

// NewManager builds a Manager.
func NewManager(opts Options) (*Manager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *entry]{
		NumCounters:        max(1000, 10*opts.CacheBytes/opts.ChunkBytes),
		MaxCost:            opts.CacheBytes,
		BufferItems:        64,
		IgnoreInternalCost: true, // cost = the chunk's bytes, so Stats adds up
		// The cache's reference to an entry's buffer ends when the entry
		// leaves it (evicted, rejected or replaced).
		OnExit: func(e *entry) {
			if e != nil && e.buf != nil {
				e.buf.unref()
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	m := &Manager{opts: opts, cache: cache, budget: newBudget(opts.readerBytes()), bufs: newBufPool(opts.ChunkBytes, freeChunkBuffers),
		metrics: newTierMetrics(opts.Registerer), streams: map[*stream]struct{}{}, bundles: map[string]*Bundle{}}
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		gauge := func(name, help string, f func(Stats) int64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "strata_tiering_" + name, Help: help},
				func() float64 { return float64(f(m.Stats())) })
		}
		opts.Registerer.MustRegister(
			gauge("reader_streams", "Open sequential remote readers.", func(s Stats) int64 { return int64(s.Streams) }),
			gauge("reader_inflight_gets", "Chunk GETs in flight.", func(s Stats) int64 { return s.InflightGets }),
			gauge("reader_held_bytes", "Chunk bytes remote readers hold beside the cache.", func(s Stats) int64 { return s.HeldBytes }),
			gauge("reader_held_bytes_max", "The most chunk bytes remote readers have held beside the cache.", func(s Stats) int64 { return s.MaxHeldBytes }),
			gauge("reader_held_bytes_limit", "remote.log.read.ahead.bytes in effect.", func(s Stats) int64 { return s.ReadAheadBytes }),
			gauge("chunk_cache_bytes", "Bytes in the remote chunk cache.", func(s Stats) int64 { return s.CacheBytes }),
			gauge("chunk_cache_bytes_limit", "remote.log.cache.bytes in effect.", func(s Stats) int64 { return s.CacheMaxBytes }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_tiering_chunk_buffers_allocated_total", Help: "Chunk buffers allocated (fresh memory: page faults as a GET fills it)."},
				func() float64 { return float64(m.bufs.allocated.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "strata_tiering_chunk_buffers_reused_total", Help: "Chunk buffers reused from the pool of free ones."},
				func() float64 { return float64(m.bufs.reused.Load()) }),
		)
	}
	return m, nil
}

// Close stops every reader and its fetches, then releases the cache.
func (m *Manager) Close() {
	m.closeMu.Lock()
	m.closed = true // no new fetches, no more cache writes
	m.closeMu.Unlock()
	m.streamsMu.Lock()
	all := make([]*stream, 0, len(m.streams))
	for s := range m.streams {
		all = append(all, s)
	}
	m.streamsMu.Unlock()
	for _, s := range all {
		s.close()
	}
	m.bgCancel()
	m.bg.Wait()
	m.cache.Close()
}

// Stats is the readers' own accounting of memory and work in progress.
type Stats struct {
	Streams        int   // open sequential readers
	InflightGets   int64 // chunk GETs running now
	HeldBytes      int64 // chunk bytes readers hold outside the cache (fetching or not yet read)
	MaxHeldBytes   int64 // the most HeldBytes has been
	ReadAheadBytes int64 // HeldBytes' bound
	CacheBytes     int64 // bytes in the chunk cache (ristretto's cost)
	CacheMaxBytes  int64 // CacheBytes' bound
	// Chunk buffers (bufpool.go): allocated fresh, reused from the pool,
	// free in the pool now, and released more often than referenced (a
	// bug: always 0).
	BuffersAllocated, BuffersReused, BuffersFree, BuffersOverReleased int64
}

// WaitIdle waits until no reader holds memory or has a GET in flight (every
// session closed or idle with nothing fetched ahead), or ctx ends.
func (m *Manager) WaitIdle(ctx context.Context) error {
	return m.waitUntil(ctx, func(st Stats) bool { return st.HeldBytes == 0 && st.InflightGets == 0 })
}

// waitUntil waits until cond holds, checking it whenever the readers' budget
// changes or a GET finishes.
func (m *Manager) waitUntil(ctx context.Context, cond func(Stats) bool) error {
	for {
		wake := m.budget.watch()
		if st := m.Stats(); cond(st) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return fmt.Errorf("tiering: readers still busy (%+v): %w", m.Stats(), ctx.Err())
		}
	}
}

// Stats reports the readers' accounting. CacheBytes + HeldBytes never
// exceeds CacheMaxBytes + ReadAheadBytes.
func (m *Manager) Stats() Stats {
	m.streamsMu.Lock()
	n := len(m.streams)
	m.streamsMu.Unlock()
	held, maxHeld := m.budget.usage()
	return Stats{Streams: n, InflightGets: m.inflightGets.Load(), HeldBytes: held, MaxHeldBytes: maxHeld,
		ReadAheadBytes: m.budget.capacity, CacheBytes: m.cache.MaxCost() - m.cache.RemainingCost(), CacheMaxBytes: m.cache.MaxCost(),
		BuffersAllocated: m.bufs.allocated.Load(), BuffersReused: m.bufs.reused.Load(), BuffersFree: int64(m.bufs.freeBuffers()), BuffersOverReleased: m.bufs.overReleased.Load()}
}

// Partition returns the tiered view of a partition; call Load before use.
func (m *Manager) Partition(topic string, partition int32, log LocalLog) *Partition {
	return &Partition{mgr: m, topic: topic, partition: partition, log: log,
		ms: manifestStore{store: m.opts.Store, prefix: PartitionPrefix(topic, partition)}}
}

// Store is the object store.
func (m *Manager) Store() remotestore.Storage { return m.opts.Store }

func (m *Manager) bundleCached(seg RemoteSegment) bool {
	m.bundleMu.Lock()
	defer m.bundleMu.Unlock()
	_, ok := m.bundles[seg.ID]
	return ok
}

// bundle returns a segment's decoded index bundle, cached by segment id.
func (m *Manager) bundle(ctx context.Context, prefix string, seg RemoteSegment) (*Bundle, error) {
	m.bundleMu.Lock()
	b, ok := m.bundles[seg.ID]
	m.bundleMu.Unlock()
	if ok {
		return b, nil
	}
	rc, err := m.opts.Store.Get(ctx, seg.IndexesKey(prefix), 0, -1)
	if err != nil {
		return nil, fmt.Errorf("tiering: get %s: %w", seg.IndexesKey(prefix), err)
	}
	raw, err := readAllClose(rc)
	if err != nil {
		return nil, fmt.Errorf("tiering: get %s: %w", seg.IndexesKey(prefix), err)
	}
	b, err = DecodeBundle(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", seg.IndexesKey(prefix), err)
	}
	m.bundleMu.Lock()
	if len(m.bundles) >= 1024 {
		clear(m.bundles) // a crude bound; bundles are small and cheap to refetch
	}
	m.bundles[seg.ID] = b
	m.bundleMu.Unlock()
	return b, nil
}
