// Package broker is Strata's Kafka protocol server: it accepts connections,
// decodes requests with franz-go's kmsg, and answers them from partition logs
// (localstore) and cluster metadata (coord).
//
// Files named NN_name.go each handle one Kafka API key, as in franz-go's kfake:
// a doc block names the versions handled and the Kafka behaviour matched.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/broker/fetchsession"
	"github.com/strata-broker/strata/broker/group"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/remotestore"
	"github.com/strata-broker/strata/tiering"
)

// Options configures a Broker.
type Options struct {
	NodeID  int32
	DataDir string
	// Listen is the host:port to accept Kafka connections on ("127.0.0.1:0"
	// picks a free port; Addr tells which).
	Listen string
	// Advertise is the host:port clients are told to connect to; empty means
	// the listener's address.
	Advertise string
	// Settings are broker configs by Kafka name (num.partitions, log.segment.bytes, …).
	Settings map[string]string
	// Coord is the metadata store; nil opens the embedded single-node store
	// in DataDir.
	Coord coord.Coordinator
	// Remote is the object store for tiered storage (--remote); nil
	// disables tiering. The broker does not close it.
	Remote remotestore.Storage
	// Clock is the broker's time and timers; nil means the wall clock. Tests
	// inject a clock.Fake so timeouts and retention never need sleeps.
	Clock  clock.Clock
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (o *Options) EnsureDefaults() {
	if o.Listen == "" {
		o.Listen = "127.0.0.1:9092"
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Settings == nil {
		o.Settings = map[string]string{}
	}
}

// Validate reports bad options with a message fit for an operator.
func (o *Options) Validate() error {
	if o.DataDir == "" {
		return errors.New("data directory is required (--data-dir or log.dirs)")
	}
	if o.NodeID < 0 {
		return fmt.Errorf("node.id must be >= 0, got %d", o.NodeID)
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("listen address %q: %v", o.Listen, err)
	}
	if o.Advertise != "" {
		if _, _, err := net.SplitHostPort(o.Advertise); err != nil {
			return fmt.Errorf("advertise address %q: %v", o.Advertise, err)
		}
	}
	_, err := parseBrokerSettings(o.Settings)
	return err
}

// Broker is one running Strata broker.
type Broker struct {
	opts     Options
	log      *slog.Logger
	settings brokerSettings
	coord    coord.Coordinator
	ownCoord bool
	ln       net.Listener
	host     string
	port     int32
	metrics  *metrics
	topics   *topicRegistry
	pids     *producerIDs
	groups   *group.Coordinator
	txn      *txnHost // the transaction coordinator (txn_host.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine started by goBackground

	// lifeMu orders goBackground against Close: once closing is set no
	// goroutine starts, so wg.Wait in Close never races a wg.Add.
	lifeMu   sync.Mutex
	closing  bool
	closed   chan struct{} // closed when the first Close has finished
	closeErr error

	connsMu sync.Mutex
	conns   map[*conn]struct{}

	// isr writes leaders' ISR changes to coord (isr.go); replicas runs the
	// follower fetchers (replication.go).
	isr      *isrWriter
	replicas *replicaManager
	ctrl     *controller // controller.go
	peers    *peerPool   // connections to other brokers (peers.go)

	// fetchSessions are the KIP-227 incremental fetch sessions
	// (fetch_session.go).
	fetchSessions *fetchsession.Cache

	// tier is nil unless Options.Remote is set.
	tier *tiering.Manager
	// remoteReads bounds concurrent fetches served from remote storage.
	remoteReads chan struct{}
}

// New opens the logs in opts.DataDir and binds the listener, but does not
// accept connections until Serve. On any error everything it opened so far
// is closed again.
func New(opts Options) (_ *Broker, err error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	settings, _ := parseBrokerSettings(opts.Settings)
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	b := &Broker{
		opts:     opts,
		log:      opts.Logger,
		settings: settings,
		coord:    opts.Coord,
		conns:    map[*conn]struct{}{},
		metrics:  newMetrics(),
	}
	warnDeprecatedSettings(b.log, settings)
	if b.fetchSessions, err = fetchsession.New(fetchsession.Options{MaxSessions: settings.fetchSessionSlots}); err != nil {
		return nil, err
	}
	b.metrics.watchFetchSessions(b.fetchSessions)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	// undo runs, newest first, when a later step fails.
	var undo []func()
	defer func() {
		if err != nil {
			b.cancel()
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if b.coord == nil {
		c, err := coord.OpenEmbedded(opts.DataDir, opts.NodeID)
		if err != nil {
			return nil, err
		}
		b.coord, b.ownCoord = c, true
		undo = append(undo, func() { b.closeCoord() })
	}
	b.pids = newProducerIDs(b.coord)
	b.isr = newISRWriter(b)
	b.replicas = newReplicaManager(b)
	b.ctrl = newController(b)
	b.peers = newPeerPool(b)
	if err := b.openTiering(); err != nil {
		return nil, err
	}
	if b.tier != nil {
		undo = append(undo, b.tier.Close)
	}
	b.topics = newTopicRegistry(b)
	if b.groups, err = newGroupCoordinator(b); err != nil {
		return nil, err
	}
	undo = append(undo, func() { b.groups.Close() })
	if b.txn, err = newTxnHost(b); err != nil {
		return nil, err
	}
	undo = append(undo, func() { b.txn.close() })
	if err := b.topics.load(b.ctx); err != nil {
		b.topics.closeAll()
		return nil, err
	}
	undo = append(undo, func() { b.topics.closeAll() })
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	undo = append(undo, func() { ln.Close() })
	b.ln = ln
	adv := opts.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, portStr, _ := net.SplitHostPort(adv)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("advertise port %q: %v", portStr, err)
	}
	if adv == ln.Addr().String() || port == 0 {
		_, lp, _ := net.SplitHostPort(ln.Addr().String())
		port, _ = strconv.Atoi(lp)
	}
	b.host, b.port = host, int32(port)
	var inc [8]byte
	rand.Read(inc[:])
	reg := coord.BrokerInfo{NodeID: opts.NodeID, Host: b.host, Port: b.port, Rack: b.settings.rack, Incarnation: hex.EncodeToString(inc[:])}
	if _, err := b.coord.RegisterBroker(b.ctx, reg); err != nil {
		return nil, err
	}
	b.topics.refreshBrokers()
	b.goBackground(b.ctrl.run)
	return b, nil
}

// Addr is the address the listener is bound to.
func (b *Broker) Addr() net.Addr { return b.ln.Addr() }

// goBackground runs fn on a goroutine that Close waits for, unless Close has
// begun, in which case it does not start fn and returns false. Every
// goroutine the broker starts goes through it: a WaitGroup must not gain
// members while Close waits on it (the panic of issue 10).
func (b *Broker) goBackground(fn func()) bool {
	b.lifeMu.Lock()
	defer b.lifeMu.Unlock()
	if b.closing {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
	return true
}

// Serve accepts connections until Close. It also runs the background
// loops: maintenance (flush.ms, segment.ms rolls of idle partitions),
// tiering, retention and the log cleaner. Serve after Close returns nil at
// once.
func (b *Broker) Serve() error {
	b.goBackground(b.maintenanceLoop)
	if b.tier != nil {
		b.goBackground(func() { b.every(time.Duration(b.settings.remoteTaskIntervalMs)*time.Millisecond, b.TieringPass) })
	}
	b.goBackground(b.logCleanerLoop)
	b.txn.start()
	b.goBackground(b.isr.run)
	b.goBackground(func() { b.every(time.Duration(b.settings.retentionCheckMs)*time.Millisecond, b.RetentionPass) })
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			if b.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return err
		}
		c := newConn(b, nc)
		b.connsMu.Lock()
		b.conns[c] = struct{}{}
		b.connsMu.Unlock()
		started := b.goBackground(func() {
			c.serve()
			b.connsMu.Lock()
			delete(b.conns, c)
			b.connsMu.Unlock()
		})
		if !started {
			b.connsMu.Lock()
			delete(b.conns, c)
			b.connsMu.Unlock()
			nc.Close()
			return nil
		}
	}
}

// Close stops accepting, closes connections, waits for in-flight requests
// and background loops, then closes every log cleanly (so the next start
// does no recovery scan). It is safe at any moment — before, during or after
// Serve — and more than once.
func (b *Broker) Close() error {
	b.lifeMu.Lock()
	if b.closing {
		b.lifeMu.Unlock()
		<-b.closed
		return b.closeErr
	}
	b.closing = true
	b.closed = make(chan struct{})
	b.lifeMu.Unlock()
	defer close(b.closed)

	b.cancel()
	b.groups.Close()
	b.txn.close()
	b.peers.close()
	b.ln.Close()
	b.connsMu.Lock()
	for c := range b.conns {
		c.nc.Close()
	}
	b.connsMu.Unlock()
	b.wg.Wait()
	err := b.topics.closeAll()
	if b.tier != nil {
		b.tier.Close()
	}
	if cerr := b.closeCoord(); err == nil {
		err = cerr
	}
	b.closeErr = err
	return err
}

func (b *Broker) closeCoord() error {
	if b.ownCoord {
		return b.coord.Close()
	}
	return nil
}

func (b *Broker) now() time.Time { return b.opts.Clock.Now() }

// maintenanceLoop drives time-based work that has no request to hang on:
// flush.ms and segment.ms for partitions that receive no appends.
func (b *Broker) maintenanceLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			b.topics.tick()
		}
	}
}
