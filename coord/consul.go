package coord

// Consul is the cluster Coordinator, on hashicorp/consul/api.
//
// Keyspace, under ConsulOptions.Prefix (default "strata/default/"):
//
//	<prefix>cluster-id              the cluster id: created (check-not-exists) by the
//	                                first broker to hold the controller lock
//	<prefix>controller              the controller lock, acquired with the broker's
//	                                session; value {"node_id", "term": random per
//	                                acquisition}; the controller epoch is the key's
//	                                ModifyIndex (the Raft index of the acquiring
//	                                transaction)
//	<prefix>brokers/<node-id>       a registration: brokerDoc JSON, acquired with the
//	                                broker's session; the broker epoch is the key's
//	                                CreateIndex (each registration deletes and
//	                                re-creates the key in one transaction)
//	<prefix>producer-ids            the next free producer id, decimal; check-and-set
//	<prefix>topics/<name>           topicDoc JSON: id, partition count, configs,
//	                                internal, version
//	<prefix>topic-ids/<32 hex>      the topic name; makes topic ids unique (created
//	                                with check-not-exists in the topic's transaction)
//	<prefix>partitions/<name>/<p>   PartitionMeta JSON
//
// The default prefix names the cluster rather than containing its id, as
// ARCHITECTURE.md's "strata/<cluster-id>/" would suggest: a broker must know
// the prefix before it can read the id stored under it, and the id is only
// created once a broker holds the controller lock there. Two clusters on one
// Consul take two --consul-prefix values.
//
// Partitions have one key each so that ISR changes of different partitions
// never conflict. A Consul transaction holds at most 64 operations, so a
// topic's partition keys are written in chunks first and its topic key last:
// a topic exists for readers only once its topic key does, and partition
// keys without one (an interrupted CreateTopic) or beyond its count (an
// interrupted partition increase) are ignored by readers and removed by the
// next controller. DeleteTopic removes the topic key, its id and its
// partition folder in one transaction.
//
// Fencing: every controller-only write is one transaction that starts with
// check-session on the controller key for our session and check-index on it
// for the term's epoch (so a write left over from an earlier term of the
// same session fails too), and every leader write one that starts with
// check-session on our registration key; every key changed is check-and-set
// on its ModifyIndex (or check-not-exists; the few keys no reader can see
// yet are plainly set). A deposed controller or a fenced
// broker therefore lands nothing, even before it has noticed.
//
// Liveness: each coordinator registers an agent service with a TTL check of
// SessionTimeout (Kafka's broker.session.timeout.ms) that it passes every
// HeartbeatInterval, and creates a session bound to that check only (not to
// serfHealth, which every broker on one agent shares) with Behavior=delete
// and a 1ms lock delay. When heartbeats stop, the check goes critical, Consul
// invalidates the session and deletes the keys it held: the registration
// disappears and the controller lock is free. consul_session.go holds that
// part, consul_watch.go the cached view every read answers from.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// ErrConsulUnavailable wraps every failure to reach Consul (connection
// refused, timeouts, 5xx): the write did not happen or its outcome is
// unknown, and reads keep answering from the last snapshot.
var ErrConsulUnavailable = errors.New("coord: consul unavailable")

// ConsulOptions configures OpenConsul.
type ConsulOptions struct {
	// Address is the Consul agent's HTTP API, host:port. Empty: $CONSUL_HTTP_ADDR,
	// else 127.0.0.1:8500. The api's other environment variables
	// (CONSUL_HTTP_TOKEN, CONSUL_HTTP_SSL, ...) apply as for the consul CLI.
	Address string
	// Prefix is where the cluster's keys live; it ends with '/' (added if
	// missing). Default "strata/default/" (--consul-prefix).
	Prefix string
	// NodeID is this broker's node id (--node-id).
	NodeID int32
	// SessionTimeout is how long after its last heartbeat a broker's
	// registration lapses: Kafka's broker.session.timeout.ms. Default 2500ms.
	SessionTimeout time.Duration
	// HeartbeatInterval is how often the check is passed: Kafka's
	// broker.heartbeat.interval.ms. Default 500ms; at most half of
	// SessionTimeout, so one lost heartbeat does not lapse the session.
	HeartbeatInterval time.Duration
	// Logger receives garbage found in the keyspace and Consul errors.
	// Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultConsulPrefix = "strata/default/"
	// deregisterAfter removes the agent service of a process that died
	// without Close (Consul's minimum is one minute).
	deregisterAfter = "1m"
	// requestTimeout bounds one non-blocking Consul call.
	requestTimeout = 10 * time.Second
	// watchWait is the blocking query's wait; Consul adds up to 1/16 jitter.
	watchWait = 60 * time.Second
)

// EnsureDefaults fills zero fields with defaults.
func (o *ConsulOptions) EnsureDefaults() {
	if o.Prefix == "" {
		o.Prefix = defaultConsulPrefix
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 2500 * time.Millisecond
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = 500 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports options OpenConsul cannot work with.
func (o *ConsulOptions) Validate() error {
	switch {
	case strings.HasPrefix(o.Prefix, "/") || strings.Contains(o.Prefix, "//"):
		return fmt.Errorf("coord: consul prefix %q must be a relative key path", o.Prefix)
	case o.NodeID < 0:
		return fmt.Errorf("coord: node id %d is negative", o.NodeID)
	case o.SessionTimeout < 100*time.Millisecond:
		return fmt.Errorf("coord: session timeout %v is below 100ms", o.SessionTimeout)
	case o.HeartbeatInterval <= 0 || 2*o.HeartbeatInterval > o.SessionTimeout:
		return fmt.Errorf("coord: heartbeat interval %v must be positive and at most half the session timeout %v",
			o.HeartbeatInterval, o.SessionTimeout)
	}
	return nil
}

// Consul is the cluster Coordinator (see the layout above).
//
// State and its owners: c.mu guards the snapshot (raw pairs, our own
// patches, the decoded view), the session id, the registration and the
// controller term; it is never held across a Consul call. regMu serialises
// registration writes (RegisterBroker, SetShuttingDown, the keeper's
// re-registration), topicMu the controller's topic writes from this process,
// campaign the Campaign calls. Lock order: regMu or topicMu, then c.mu.
// Goroutines: follow (the watch loop) and keep (heartbeats and the session),
// both ended by Close.
type Consul struct {
	opts      ConsulOptions
	log       *slog.Logger
	client    *api.Client
	keys      consulKeys
	serviceID string // this process's agent service; its TTL check is checkID
	checkID   string
	watch     watchers

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan struct{} // closed once the first snapshot is in

	// base and validUntil make SessionValidUntil one atomic load: validUntil
	// is nanoseconds after base (which carries the monotonic clock).
	base       time.Time
	validUntil atomic.Int64

	regMu    sync.Mutex
	topicMu  sync.Mutex
	campaign chan struct{} // a one-slot semaphore, so waiting honours ctx

	// Test hooks (export_test.go): pauseBeats stops heartbeats as a
	// SIGSTOPped process would; pauseWatch stops applying watch results, so
	// the coordinator keeps believing what it last saw; beats counts
	// completed heartbeat rounds.
	pauseBeats atomic.Bool
	pauseWatch atomic.Bool
	beats      atomic.Int64

	mu struct {
		sync.Mutex
		closed bool
		snap   snapshot
		// session is the live session ("" while there is none); sessionUp is
		// closed while there is one and replaced when it is lost.
		session       string
		sessionUp     chan struct{}
		keeperStarted bool
		// want is what RegisterBroker asked for (nil before it); self the
		// current registration, made under regSession.
		want       *BrokerInfo
		self       BrokerInfo
		regSession string
		term       *consulTerm
	}
}

// consulTerm is one tenure of the controller lock.
type consulTerm struct {
	epoch   int64 // the controller key's ModifyIndex when acquired
	session string
	done    chan struct{}
}

// fence is the guard of a write on the term's authority (see Consul.fence).
func (t *consulTerm) fence(controllerKey string) api.TxnOps {
	return api.TxnOps{opCheckSession(controllerKey, t.session), opCheckIndex(controllerKey, uint64(t.epoch))}
}

var _ Coordinator = (*Consul)(nil)

// OpenConsul connects to Consul and waits (bounded by ctx) until it has read
// the keyspace once. It registers nothing: RegisterBroker and Campaign start
// the session on first use, so a coordinator opened only to read (an
// operator command) leaves no trace.
func OpenConsul(ctx context.Context, opts ConsulOptions) (*Consul, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("coord: consul client: %w", err)
	}
	var inst [6]byte
	rand.Read(inst[:])
	c := &Consul{
		opts:     opts,
		log:      opts.Logger,
		client:   client,
		keys:     consulKeys{prefix: opts.Prefix},
		ready:    make(chan struct{}),
		base:     time.Now(),
		campaign: make(chan struct{}, 1),
	}
	c.serviceID = fmt.Sprintf("strata-%d-%s", opts.NodeID, hex.EncodeToString(inst[:]))
	c.checkID = c.serviceID + ":session"
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.snap = newSnapshot()
	c.mu.sessionUp = make(chan struct{})
	c.wg.Add(1)
	go c.follow()
	select {
	case <-c.ready:
		return c, nil
	case <-ctx.Done():
		err := c.lastWatchErr()
		c.Close()
		return nil, fmt.Errorf("%w: reading %s from %s: %v (%v)", ErrConsulUnavailable, opts.Prefix, cfg.Address, ctx.Err(), err)
	}
}

// ClusterID is "" until a controller has created it.
func (c *Consul) ClusterID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.snap.view.clusterID
}

func (c *Consul) Controller() (int32, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ct := c.mu.snap.view.controller
	return ct.node, ct.epoch
}

func (c *Consul) Topics(ctx context.Context) ([]TopicMeta, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	return c.mu.snap.view.topicList(), nil
}

func (c *Consul) Topic(ctx context.Context, name string) (TopicMeta, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.mu.snap.view.topics[name]
	if !ok {
		return TopicMeta{}, ErrUnknownTopic
	}
	return t.meta.Clone(), nil
}

func (c *Consul) Brokers(ctx context.Context) ([]BrokerInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.snap.view.brokerList(), nil
}

func (c *Consul) Self() BrokerInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.self
}

// SessionValidUntil is the start of the last heartbeat round that passed the
// check and then found the session alive, plus SessionTimeout: the check
// cannot go critical, nor the session lapse, before then. It stops advancing
// while Consul is unreachable.
func (c *Consul) SessionValidUntil() time.Time {
	return c.base.Add(time.Duration(c.validUntil.Load()))
}

func (c *Consul) Watch(fn func(Event)) func() {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watch.add(fn, c.mu.snap.view.initialEvents())
}

// Close ends the controller term, stops the goroutines, and destroys the
// session, which deletes the registration and frees the controller lock at
// once (a controlled shutdown needs no session timeout to pass).
func (c *Consul) Close() error {
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return nil
	}
	c.mu.closed = true
	c.endTermLocked()
	sid, started := c.mu.session, c.mu.keeperStarted
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.validUntil.Store(0)
	if started {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if sid != "" {
			if _, err := c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				c.log.Warn("coord: destroying the consul session at close", "session", sid, "err", err)
			}
		}
		if err := c.client.Agent().ServiceDeregisterOpts(c.serviceID, (&api.QueryOptions{}).WithContext(ctx)); err != nil {
			c.log.Warn("coord: deregistering the consul service at close", "service", c.serviceID, "err", err)
		}
		cancel()
	}
	c.watch.closeAll()
	return nil
}

// unavailable wraps a Consul call's failure.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrConsulUnavailable, what, err)
}

// callCtx bounds one non-blocking Consul call by ctx, requestTimeout and
// Close.
func (c *Consul) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	stop := context.AfterFunc(c.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// sleepCtx waits d unless ctx or the coordinator ends first.
func (c *Consul) sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}
