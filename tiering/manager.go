package tiering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// CacheBytes bounds the chunk cache.
	CacheBytes int64
	// ReadAhead is how many chunks after the one just fetched are fetched in
	// the background for sequential readers.
	ReadAhead int
	// FetchWorkers bounds concurrent background chunk fetches.
	FetchWorkers int
	// ManifestKeep is how many entries the manifest head keeps before
	// spilling older finished ones into an immutable part.
	ManifestKeep int
	Now          func() time.Time
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = 4 << 20
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = 256 << 20
	}
	if o.ReadAhead < 0 {
		o.ReadAhead = 0
	} else if o.ReadAhead == 0 {
		o.ReadAhead = 2
	}
	if o.FetchWorkers <= 0 {
		o.FetchWorkers = 4
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
	return nil
}

// Manager holds what a broker's tiered partitions share: the object store,
// the chunk cache, the background fetch pool and the metrics.
type Manager struct {
	opts    Options
	cache   *ristretto.Cache[string, []byte]
	sem     chan struct{}
	metrics *tierMetrics

	// bg tracks read-ahead goroutines; Close cancels and waits for them
	// before closing the cache (a Set on a closed ristretto cache panics).
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
	// closeMu guards closed: cache writes hold it shared.
	closeMu sync.RWMutex
	closed  bool

	inflightMu sync.Mutex
	inflight   map[string]*chunkCall

	bundleMu sync.Mutex
	bundles  map[string]*Bundle
}

type chunkCall struct {
	done chan struct{}
	data []byte
	err  error
}

// NewManager builds a Manager.
func NewManager(opts Options) (*Manager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: max(1000, 10*opts.CacheBytes/opts.ChunkBytes),
		MaxCost:     opts.CacheBytes,
		BufferItems: 64,
	})
	if err != nil {
		return nil, fmt.Errorf("tiering: chunk cache: %w", err)
	}
	m := &Manager{opts: opts, cache: cache, sem: make(chan struct{}, opts.FetchWorkers),
		metrics: newTierMetrics(opts.Registerer), inflight: map[string]*chunkCall{}, bundles: map[string]*Bundle{}}
	m.bgCtx, m.bgCancel = context.WithCancel(context.Background())
	return m, nil
}

// Close releases the cache.
func (m *Manager) Close() {
	m.closeMu.Lock()
	m.closed = true // no new read-ahead, no more cache writes
	m.closeMu.Unlock()
	m.bgCancel()
	m.bg.Wait()
	m.cache.Close()
}

// Partition returns the tiered view of a partition; call Load before use.
func (m *Manager) Partition(topic string, partition int32, log LocalLog) *Partition {
	return &Partition{mgr: m, topic: topic, partition: partition, log: log,
		ms: manifestStore{store: m.opts.Store, prefix: PartitionPrefix(topic, partition)}}
}

// Store is the object store.
func (m *Manager) Store() remotestore.Storage { return m.opts.Store }

// chunk returns chunk k of an object from the cache or the store, fetching
// the following chunks in the background (read-ahead) on a miss.
func (m *Manager) chunk(ctx context.Context, key, id string, k, size int64) ([]byte, error) {
	ck := fmt.Sprintf("%s/%d", id, k)
	b, ok := m.cache.Get(ck)
	if ok {
		m.metrics.cacheHits.Inc()
	} else {
		m.metrics.cacheMisses.Inc()
		var err error
		if b, err = m.load(ctx, key, ck, k, size); err != nil {
			return nil, err
		}
	}
	// Read ahead on hits too, so a sequential reader keeps the next chunks
	// in flight instead of stalling on every ReadAhead+1-th one.
	for i := int64(1); i <= int64(m.opts.ReadAhead); i++ {
		next := k + i
		if next*m.opts.ChunkBytes >= size {
			break
		}
		nk := fmt.Sprintf("%s/%d", id, next)
		m.inflightMu.Lock()
		_, busy := m.inflight[nk]
		m.inflightMu.Unlock()
		if busy {
			continue
		}
		if _, ok := m.cache.Get(nk); ok {
			continue
		}
		select {
		case m.sem <- struct{}{}:
			m.closeMu.RLock()
			if m.closed {
				m.closeMu.RUnlock()
				<-m.sem
				return b, nil
			}
			m.bg.Add(1)
			m.closeMu.RUnlock()
			go func() {
				defer m.bg.Done()
				defer func() { <-m.sem }()
				ctx, cancel := context.WithTimeout(m.bgCtx, time.Minute)
				defer cancel()
				m.load(ctx, key, nk, next, size)
			}()
		default: // the pool is busy; the reader will fetch it itself
		}
	}
	return b, nil
}

// load fetches one chunk, letting concurrent callers for the same chunk share
// one GET.
func (m *Manager) load(ctx context.Context, key, ck string, k, size int64) ([]byte, error) {
	m.inflightMu.Lock()
	if c, ok := m.inflight[ck]; ok {
		m.inflightMu.Unlock()
		select {
		case <-c.done:
			return c.data, c.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c := &chunkCall{done: make(chan struct{})}
	m.inflight[ck] = c
	m.inflightMu.Unlock()
	c.data, c.err = m.fetchChunk(ctx, key, k, size)
	if c.err == nil {
		m.closeMu.RLock()
		if !m.closed {
			m.cache.Set(ck, c.data, int64(len(c.data)))
			m.cache.Wait()
		}
		m.closeMu.RUnlock()
	}
	m.inflightMu.Lock()
	delete(m.inflight, ck)
	m.inflightMu.Unlock()
	close(c.done)
	return c.data, c.err
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
