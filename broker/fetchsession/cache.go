// Package fetchsession is the broker side of KIP-227's incremental fetch
// sessions, after Kafka's FetchManager, FetchSessionCache and
// CachedPartition (core/.../server/FetchSession.scala): which fetch context
// a request gets from its session id and epoch, what a session remembers of
// each partition, which partitions an incremental response must carry, and
// which session to evict when the cache is full.
//
// It is pure: no I/O, no goroutines, time passed in. The broker's Fetch
// handler calls NewContext before it reads, reads the partitions the
// context lists, and calls Finish with what it read; Finish says which
// partitions go in the response.
//
// The rules for a request's (session id, epoch), as Kafka's
// FetchManager.newContext:
//
//	epoch 0 (INITIAL)       full fetch; the named session (id != 0), if any,
//	                        is closed; a new session is created when the
//	                        response is built, if the cache has room
//	epoch -1 (FINAL)        full fetch without a session ("sessionless");
//	                        the named session, if any, is closed — this is
//	                        what clients without session support send, some
//	                        with id 0, kafka-go with id -1
//	any other epoch         incremental fetch of session id:
//	                        FETCH_SESSION_ID_NOT_FOUND if there is none,
//	                        INVALID_FETCH_SESSION_EPOCH if epoch is not the
//	                        one it expects, FETCH_SESSION_TOPIC_ID_ERROR if
//	                        the request names topics by id (v13+) and the
//	                        session by name or the other way round;
//	                        otherwise the request's partitions are added or
//	                        updated, its forgotten ones removed, and the
//	                        fetch reads every partition of the session
//
// A session that loses its last partition is closed and the fetch is
// answered as a sessionless one. Session ids are random, positive and
// unique among live sessions.
//
// Locking: one mutex over the whole cache, held only inside NewContext,
// Finish and Stats, never while the broker reads.
package fetchsession

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka's FetchMetadata constants.
const (
	InitialEpoch     int32 = 0
	FinalEpoch       int32 = -1
	InvalidSessionID int32 = 0
)

// Options configure a Cache.
type Options struct {
	// MaxSessions is max.incremental.fetch.session.cache.slots: how many
	// sessions the broker keeps (Kafka's default 1000). Zero creates none,
	// so every client fetches sessionless.
	MaxSessions int
	// EvictionAge is how long a session must have gone unused to be evicted
	// by anyone, and how old it must be before a more valuable newcomer may
	// push it out: Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS, two
	// minutes, which Kafka does not expose as a setting.
	EvictionAge time.Duration
	// NewID returns a candidate session id; nil means random. Tests pin it.
	NewID func() int32
}

// DefaultMaxSessions and DefaultEvictionAge are Kafka's.
const (
	DefaultMaxSessions = 1000
	DefaultEvictionAge = 2 * time.Minute
)

// EnsureDefaults fills zero fields (MaxSessions stays as given: zero is a
// real setting).
func (o *Options) EnsureDefaults() {
	if o.EvictionAge == 0 {
		o.EvictionAge = DefaultEvictionAge
	}
	if o.NewID == nil {
		o.NewID = func() int32 { return 1 + rand.Int32N(math.MaxInt32) }
	}
}

// Validate reports options the cache cannot honour.
func (o *Options) Validate() error {
	switch {
	case o.MaxSessions < 0:
		return fmt.Errorf("fetchsession: negative session count %d", o.MaxSessions)
	case o.EvictionAge < 0:
		return fmt.Errorf("fetchsession: negative eviction age %v", o.EvictionAge)
	}
	return nil
}

// Key names a partition within a session: by topic id in sessions of Fetch
// v13+, by name before (the other field is then zero).
type Key struct {
	TopicID   [16]byte
	Topic     string
	Partition int32
}

// Params are what a fetcher asks of one partition. A session remembers them,
// so an incremental request repeats a partition only when they change.
type Params struct {
	FetchOffset        int64
	LogStartOffset     int64 // the fetcher's own (followers), -1 for consumers
	MaxBytes           int32
	CurrentLeaderEpoch int32
	LastFetchedEpoch   int32
}

// Partition is one partition to read, with its parameters.
type Partition struct {
	Key
	Params
}

// Request is what NewContext needs of a Fetch request.
type Request struct {
	SessionID int32
	Epoch     int32
	// TopicIDs: Fetch v13+, partitions named by topic id.
	TopicIDs bool
	// Follower: a replica fetch; its sessions are privileged (evicted last).
	Follower   bool
	Partitions []Partition
	Forgotten  []Key
}

// Kind is the sort of fetch a context describes.
type Kind uint8

const (
	// Sessionless: a full fetch that neither has nor gets a session.
	Sessionless Kind = iota
	// Full: a full fetch that gets a new session if there is room.
	Full
	// Incremental: a fetch of an existing session's partitions.
	Incremental
	// Failed: a session error; the response carries Err and no partitions.
	Failed
)

func (k Kind) String() string {
	switch k {
	case Sessionless:
		return "sessionless"
	case Full:
		return "full"
	case Incremental:
		return "incremental"
	case Failed:
		return "error"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Context is one Fetch request's view of its session.
type Context struct {
	Kind Kind
	// Err is the top-level error of a Failed context.
	Err *kerr.Error
	// Partitions are what the fetch reads, in order: the request's for a
	// full or sessionless fetch, the session's (least recently answered
	// with data first) for an incremental one.
	Partitions []Partition

	follower, topicIDs bool
	session            *session // Incremental
	expectEpoch        int32    // Incremental: the session's epoch after this request
}

// Outcome is what reading one partition produced, as Finish needs it.
type Outcome struct {
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	HasRecords       bool
	Error            bool // the partition is answered with an error code
	Diverging        bool // DivergingEpoch is set
	// Send is set by Finish: the partition belongs in the response.
	Send bool
}

// Stats describe the cache for metrics.
type Stats struct {
	Sessions   int
	Partitions int
	Evictions  uint64
}

// Cache holds the sessions of one broker.
type Cache struct {
	opts Options

	mu struct {
		sync.Mutex
		sessions   map[int32]*session
		partitions int // over all sessions
		evictions  uint64
	}
}

// New returns an empty cache.
func New(o Options) (*Cache, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := &Cache{opts: o}
	c.mu.sessions = map[int32]*session{}
	return c, nil
}

// nextEpoch is Kafka's FetchMetadata.nextEpoch: a session's epochs run
// 1, 2, … and wrap back to 1.
func nextEpoch(e int32) int32 {
	switch {
	case e < 0:
		return FinalEpoch
	case e == math.MaxInt32:
		return 1
	}
	return e + 1
}

// NewContext decides what a Fetch request reads (the package comment has
// the rules) and applies an incremental request's changes to its session.
func (c *Cache) NewContext(req Request, now time.Time) *Context {
	ctx := &Context{follower: req.Follower, topicIDs: req.TopicIDs}
	if req.Epoch == InitialEpoch || req.Epoch == FinalEpoch {
		if req.SessionID != InvalidSessionID {
			c.mu.Lock()
			if s := c.mu.sessions[req.SessionID]; s != nil {
				c.removeLocked(s)
			}
			c.mu.Unlock()
		}
		ctx.Kind = Full
		if req.Epoch == FinalEpoch {
			ctx.Kind = Sessionless
		}
		ctx.Partitions = req.Partitions
		return ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.mu.sessions[req.SessionID]
	switch {
	case s == nil:
		ctx.Kind, ctx.Err = Failed, kerr.FetchSessionIDNotFound
		return ctx
	case s.epoch != req.Epoch:
		ctx.Kind, ctx.Err = Failed, kerr.InvalidFetchSessionEpoch
		return ctx
	case s.topicIDs != req.TopicIDs:
		ctx.Kind, ctx.Err = Failed, kerr.FetchSessionTopicIDError
		return ctx
	}
	before := len(s.parts)
	s.update(req.Partitions, req.Forgotten)
	c.mu.partitions += len(s.parts) - before
	if len(s.parts) == 0 {
		c.removeLocked(s)
		ctx.Kind, ctx.Partitions = Sessionless, req.Partitions
		return ctx
	}
	s.lastUsed = now
	s.epoch = nextEpoch(s.epoch)
	ctx.Kind, ctx.session, ctx.expectEpoch = Incremental, s, s.epoch
	ctx.Partitions = s.snapshot()
	return ctx
}

// Finish records what the fetch read — outcomes[i] for ctx.Partitions[i] —
// and returns the response's session id. It sets Send on every outcome that
// belongs in the response: all of them for a full or sessionless fetch; for
// an incremental one only partitions with records, an error, a divergence,
// or a high watermark, last stable offset or log start offset that moved
// since the session last sent them (Kafka's
// CachedPartition.maybeUpdateResponseData). Partitions answered with
// records move to the end of the session's order, so the next fetch's byte
// budget goes to the others first.
//
// A full fetch creates its session here, if the cache has room or can evict
// a less valuable session. err is INVALID_FETCH_SESSION_EPOCH when another
// request used the session between NewContext and Finish (a duplicate
// request): the response then carries no partitions.
func (c *Cache) Finish(ctx *Context, outcomes []Outcome, now time.Time) (sessionID int32, err *kerr.Error) {
	switch ctx.Kind {
	case Failed:
		return InvalidSessionID, ctx.Err
	case Sessionless:
		for i := range outcomes {
			outcomes[i].Send = true
		}
		return InvalidSessionID, nil
	case Full:
		for i := range outcomes {
			outcomes[i].Send = true
		}
		return c.create(ctx, outcomes, now), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ctx.session
	if s.epoch != ctx.expectEpoch {
		return s.id, kerr.InvalidFetchSessionEpoch
	}
	s.recordOutcomes(ctx.Partitions, outcomes)
	return s.id, nil
}

// create stores a new session for a full fetch, or returns
// InvalidSessionID when there is no room (Kafka's maybeCreateSession).
func (c *Cache) create(ctx *Context, outcomes []Outcome, now time.Time) int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opts.MaxSessions == 0 {
		return InvalidSessionID
	}
	if len(c.mu.sessions) >= c.opts.MaxSessions && !c.evictForLocked(ctx.follower, len(ctx.Partitions), now) {
		return InvalidSessionID
	}
	s := newSession(c.newIDLocked(), ctx.follower, ctx.topicIDs, now, ctx.Partitions, outcomes)
	c.mu.sessions[s.id] = s
	c.mu.partitions += len(s.parts)
	return s.id
}

func (c *Cache) newIDLocked() int32 {
	for {
		id := c.opts.NewID()
		if id > 0 && c.mu.sessions[id] == nil {
			return id
		}
	}
}

func (c *Cache) removeLocked(s *session) {
	if c.mu.sessions[s.id] != s {
		return
	}
	delete(c.mu.sessions, s.id)
	c.mu.partitions -= len(s.parts)
}

// Stats reports the cache's size and evictions so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Sessions: len(c.mu.sessions), Partitions: c.mu.partitions, Evictions: c.mu.evictions}
}

// RequestPartition is p as a Fetch request names it, for code that reads
// partitions the way the request's own would be read.
func (p Partition) RequestPartition() kmsg.FetchRequestTopicPartition {
	return kmsg.FetchRequestTopicPartition{Partition: p.Partition, CurrentLeaderEpoch: p.CurrentLeaderEpoch, FetchOffset: p.FetchOffset,
		LastFetchedEpoch: p.LastFetchedEpoch, LogStartOffset: p.LogStartOffset, PartitionMaxBytes: p.MaxBytes}
}
