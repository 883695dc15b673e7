package group

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/kafkahash"

	"github.com/strata-broker/strata/broker/clock"
)

// Options configures a Coordinator. Durations carry Kafka's broker configs.
type Options struct {
	Host Host
	// Clock is the coordinator's time and timers; nil means the wall clock.
	Clock  clock.Clock
	Logger *slog.Logger

	// MinSessionTimeout and MaxSessionTimeout bound a member's
	// session.timeout.ms (group.min/max.session.timeout.ms).
	MinSessionTimeout, MaxSessionTimeout time.Duration
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms; zero means
	// none (EnsureDefaults leaves it alone: zero is a real setting).
	InitialRebalanceDelay time.Duration
	// OffsetsRetention is offsets.retention.minutes.
	OffsetsRetention time.Duration
	// RetentionCheckInterval is offsets.retention.check.interval.ms.
	RetentionCheckInterval time.Duration
	// OffsetMetadataMaxBytes is offset.metadata.max.bytes: longer commit
	// metadata gets OFFSET_METADATA_TOO_LARGE.
	OffsetMetadataMaxBytes int

	// LagMetrics selects the lag series (group.lag.metrics).
	LagMetrics LagMetrics
	// Registerer receives the lag collector; nil registers nothing.
	Registerer prometheus.Registerer
}

// EnsureDefaults fills zero fields with Kafka's defaults.
func (o *Options) EnsureDefaults() {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinSessionTimeout == 0 {
		o.MinSessionTimeout = 6 * time.Second
	}
	if o.MaxSessionTimeout == 0 {
		o.MaxSessionTimeout = 30 * time.Minute
	}
	if o.OffsetsRetention == 0 {
		o.OffsetsRetention = 7 * 24 * time.Hour
	}
	if o.RetentionCheckInterval == 0 {
		o.RetentionCheckInterval = 10 * time.Minute
	}
	if o.OffsetMetadataMaxBytes == 0 {
		o.OffsetMetadataMaxBytes = 4096
	}
	if o.LagMetrics == "" {
		o.LagMetrics = LagByPartition
	}
}

// Validate reports options the coordinator cannot run with.
func (o *Options) Validate() error {
	switch {
	case o.Host == nil:
		return errors.New("group: Options.Host is required")
	case o.MinSessionTimeout <= 0 || o.MaxSessionTimeout < o.MinSessionTimeout:
		return fmt.Errorf("group: session timeout bounds %v..%v are not a range", o.MinSessionTimeout, o.MaxSessionTimeout)
	case o.InitialRebalanceDelay < 0 || o.OffsetsRetention <= 0 || o.RetentionCheckInterval <= 0:
		return errors.New("group: rebalance delay, offsets retention and check interval must be positive")
	case o.OffsetMetadataMaxBytes < 0:
		return errors.New("group: offset metadata limit must not be negative")
	}
	return o.LagMetrics.validate()
}

// Coordinator coordinates the groups of the __consumer_offsets partitions
// this broker leads.
type Coordinator struct {
	opts  Options
	host  Host
	clock clock.Clock
	log   *slog.Logger

	// ctx ends with Close: appends and loads in flight give up.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the loader goroutine and timer functions running now.
	wg sync.WaitGroup
	// loadDone, set by tests before the first Elected, hears about every
	// load the loader finishes or abandons.
	loadDone func(partition int32, installed bool)

	mu struct {
		sync.Mutex
		closed bool
		groups map[string]*group
		// partitions are the __consumer_offsets partitions this broker
		// coordinates; those still loading answer
		// COORDINATOR_LOAD_IN_PROGRESS for their groups.
		partitions map[int32]*ownedPartition
		// epochs is the newest leader epoch seen per partition, by
		// Elected or Resigned, so a stale event is ignored.
		epochs map[int32]int32
		// txnGroups indexes the groups with pending transactional
		// offsets by producer id (txn_offsets.go).
		txnGroups     map[int64]map[string]struct{}
		loadQueue     []*ownedPartition
		loaderRunning bool
		expiry        clock.Timer
	}
}

// New starts a coordinator that coordinates nothing until Elected. It arms
// the offset expiry timer and registers the lag collector.
func New(opts Options) (*Coordinator, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{opts: opts, host: opts.Host, clock: opts.Clock, log: opts.Logger}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.groups = map[string]*group{}
	c.mu.partitions = map[int32]*ownedPartition{}
	c.mu.epochs = map[int32]int32{}
	c.mu.txnGroups = map[int64]map[string]struct{}{}
	if opts.Registerer != nil && opts.LagMetrics != LagOff {
		if err := opts.Registerer.Register(newLagCollector(c)); err != nil {
			return nil, fmt.Errorf("group: register metrics: %w", err)
		}
	}
	c.armExpiry()
	return c, nil
}

// Close stops every timer, answers parked JoinGroup and SyncGroup requests
// with NOT_COORDINATOR, and waits for the loader and any running timer
// function. Requests after Close get NOT_COORDINATOR. It is safe at any
// moment and more than once.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return
	}
	c.mu.closed = true
	if c.mu.expiry != nil {
		c.mu.expiry.Stop()
	}
	groups := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		groups = append(groups, g)
	}
	c.mu.groups = map[string]*group{}
	c.mu.partitions = map[int32]*ownedPartition{}
	c.mu.loadQueue = nil
	c.mu.Unlock()
	c.cancel()
	unloadGroups(groups)
	c.wg.Wait()
}

// afterFunc runs f on the clock after d unless Close has begun by then;
// Close waits for an f already running. Once Close has begun nothing is
// armed. Callers may hold a group's mu (group.mu → Coordinator.mu).
func (c *Coordinator) afterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.afterFuncLocked(d, f)
}

func (c *Coordinator) afterFuncLocked(d time.Duration, f func()) clock.Timer {
	if c.mu.closed {
		return stoppedTimer{}
	}
	return c.clock.AfterFunc(d, func() {
		if !c.enter() {
			return
		}
		defer c.wg.Done()
		f()
	})
}

// enter counts a new piece of work in wg unless the coordinator is closed.
// Adding under mu before closed is set is what makes Close's wg.Wait safe.
func (c *Coordinator) enter() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return false
	}
	c.wg.Add(1)
	return true
}

type stoppedTimer struct{}

func (stoppedTimer) Stop() bool { return false }

func (c *Coordinator) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.closed
}

func (c *Coordinator) now() time.Time { return c.clock.Now() }

// partitionFor is Kafka's GroupMetadataManager.partitionFor, so a Kafka
// tool reading __consumer_offsets finds a group's records where it expects
// them.
func partitionFor(groupID string, n int32) int32 { return kafkahash.PartitionFor(groupID, n) }

// lookup finds a group, creating an Empty one when create is set. Errors are
// what Kafka answers before touching a group: COORDINATOR_NOT_AVAILABLE (no
// offsets topic), NOT_COORDINATOR (a partition this broker does not lead, or
// closing), COORDINATOR_LOAD_IN_PROGRESS. A nil group with no error means
// "no such group".
func (c *Coordinator) lookup(ctx context.Context, groupID string, create bool) (*group, *kerr.Error) {
	n, err := c.host.OffsetsPartitions(ctx)
	if err != nil || n <= 0 {
		if err != nil && ctx.Err() == nil {
			c.log.Error("cannot create "+OffsetsTopic, "err", err)
		}
		return nil, kerr.CoordinatorNotAvailable
	}
	part := partitionFor(groupID, n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, kerr.NotCoordinator
	}
	op := c.mu.partitions[part]
	if op == nil {
		return nil, kerr.NotCoordinator
	}
	if op.loading {
		return nil, kerr.CoordinatorLoadInProgress
	}
	g := c.mu.groups[groupID]
	if g == nil && create {
		g = newGroup(c, groupID, op)
		c.mu.groups[groupID] = g
	}
	return g, nil
}

// withGroup runs fn with the group locked. A group found Dead (deleted,
// expired or unloaded between lookup and lock) is looked up again when
// create is set, so callers never act on a removed group then; otherwise fn
// sees it Dead and answers as Kafka does for a group that just went away.
func (c *Coordinator) withGroup(ctx context.Context, groupID string, create bool, fn func(g *group)) *kerr.Error {
	for {
		g, kerrv := c.lookup(ctx, groupID, create)
		if kerrv != nil {
			return kerrv
		}
		if g == nil {
			fn(nil)
			return nil
		}
		g.mu.Lock()
		if g.mu.state == groupDead && create {
			g.mu.Unlock()
			continue
		}
		fn(g)
		g.mu.Unlock()
		return nil
	}
}

// removeGroup drops a Dead group from the map (the caller holds g.mu).
func (c *Coordinator) removeGroup(g *group) {
	c.mu.Lock()
	if c.mu.groups[g.id] == g {
		delete(c.mu.groups, g.id)
	}
	c.mu.Unlock()
}

// allGroups returns the loaded groups sorted by id.
func (c *Coordinator) allGroups() []*group {
	c.mu.Lock()
	out := make([]*group, 0, len(c.mu.groups))
	for _, g := range c.mu.groups {
		out = append(out, g)
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

func (c *Coordinator) anyLoading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, op := range c.mu.partitions {
		if op.loading {
			return true
		}
	}
	return false
}

// appendRecords writes a group's records to its __consumer_offsets
// partition and returns once they are committed (the caller holds g.mu, so
// a group's records land in the order its state changed).
func (c *Coordinator) appendRecords(g *group, recs []groupRecord) error {
	_, err := c.appendRecordsAt(g, recs)
	return err
}

// appendRecordsAt is appendRecords returning the first record's offset.
func (c *Coordinator) appendRecordsAt(g *group, recs []groupRecord) (int64, error) {
	if len(recs) == 0 {
		return -1, nil
	}
	return g.owner.log.Append(c.ctx, buildGroupBatch(recs, c.now().UnixMilli()))
}

// appendErr maps a failed append to the error Kafka's GroupMetadataManager
// gives for a failed write to the offsets topic: a partition this broker no
// longer leads, or a closing coordinator, means NOT_COORDINATOR (the client
// finds the new coordinator); any other failure COORDINATOR_NOT_AVAILABLE,
// so clients retry.
func appendErr(err error) *kerr.Error {
	var ke *kerr.Error
	switch {
	case errors.Is(err, ErrNotLeader), errors.Is(err, context.Canceled):
		return kerr.NotCoordinator
	case errors.As(err, &ke) && (ke == kerr.NotLeaderForPartition || ke == kerr.KafkaStorageError):
		return kerr.NotCoordinator
	}
	return kerr.CoordinatorNotAvailable
}

// errNone is Kafka's error code 0, so results can carry "no error" like any
// other *kerr.Error (kerr has no value for it).
var errNone = &kerr.Error{Message: "NONE", Code: 0}
