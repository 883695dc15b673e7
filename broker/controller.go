package broker

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/placement"
	"github.com/strata-broker/strata/coord"
)

// The controller: one broker at a time holds the controller role through
// coord (a Consul lock in a cluster; always this broker on a single node).
// It creates, grows, reconfigures and deletes topics — placing replicas with
// broker/placement — and elects leaders when brokers come and go
// (controller_elect.go). Other brokers forward those admin requests to it
// (forward.go). Every write it makes is fenced by its term in coord: a
// deposed controller's write fails and lands nothing.
type controller struct {
	b    *Broker
	kick chan struct{}

	mu struct {
		sync.Mutex
		term    coord.Term
		active  bool
		changed chan struct{} // closed and replaced when the term changes
	}
	// prevBrokers is the live set the last reconcile pass of this term saw
	// (at a term's start: seen's baseline); owed holds the broker changes a
	// partition still has to get (its write failed). Only run's goroutine
	// uses them.
	prevBrokers []coord.BrokerInfo
	owed        map[partKey]placement.BrokerChanges

	// seen is every live set this broker observed in the last
	// rejoinWindow, controller or not, oldest first, with the newest one
	// older than the window kept as the baseline (see baseline).
	seen struct {
		sync.Mutex
		lists []seenBrokers
	}
}

func newController(b *Broker) *controller {
	c := &controller{b: b, kick: make(chan struct{}, 1)}
	c.mu.changed = make(chan struct{})
	return c
}

// kickController asks the controller (if this broker is it) to look at the
// cluster again.
func (b *Broker) kickController() {
	if b.ctrl == nil {
		return
	}
	select {
	case b.ctrl.kick <- struct{}{}:
	default:
	}
}

// run campaigns for the role and serves each term until the broker closes.
func (c *controller) run() {
	b := c.b
	for b.ctx.Err() == nil {
		term, err := b.coord.Campaign(b.ctx)
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Warn("controller campaign failed; retrying", "err", err)
				sleepCtx(b.ctx, time.Second)
			}
			continue
		}
		c.setTerm(term, true)
		b.log.Info("this broker is the controller", "controller_epoch", term.Epoch)
		c.serve(term)
		c.setTerm(coord.Term{}, false)
		if b.ctx.Err() == nil {
			b.log.Warn("lost the controller role", "controller_epoch", term.Epoch)
		}
	}
}

func (c *controller) setTerm(t coord.Term, active bool) {
	c.mu.Lock()
	c.mu.term, c.mu.active = t, active
	close(c.mu.changed)
	c.mu.changed = make(chan struct{})
	c.mu.Unlock()
}

// serve runs the controller's duties for one term: reconcile the cluster on
// every kick (metadata or broker changes) and every few seconds.
func (c *controller) serve(term coord.Term) {
	b := c.b
	c.prevBrokers, c.owed = nil, map[partKey]placement.BrokerChanges{}
	if now, err := b.coord.Brokers(b.ctx); err == nil {
		c.prevBrokers = termBaseline(c.baseline(time.Now()), now)
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	c.reconcile(term)
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-term.Done:
			return
		case <-c.kick:
		case <-t.C:
		}
		c.reconcile(term)
	}
}

// activeTerm returns the term if this broker holds the controller role. If
// coord already names this broker controller but run has not taken the
// term yet (just started), it waits for it briefly.
func (c *controller) activeTerm(ctx context.Context) (coord.Term, bool) {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		term, active, changed := c.mu.term, c.mu.active, c.mu.changed
		c.mu.Unlock()
		if active {
			select {
			case <-term.Done:
			default:
				return term, true
			}
		}
		if id, _ := c.b.coord.Controller(); id != c.b.opts.NodeID {
			return coord.Term{}, false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return coord.Term{}, false
		case <-ctx.Done():
			return coord.Term{}, false
		}
	}
}

// errNotController is returned by controller-side operations on a broker
// that does not hold the role.
var errNotController = fmt.Errorf("broker: this broker is not the controller: %w", kerr.NotController)

// placeTopic decides the replica lists of n new partitions of a topic
// (growing existing ones when existing is set) over the live brokers.
func (c *controller) placeTopic(name string, n int32, rf int16, existing [][]int32) ([][]int32, error) {
	b := c.b
	metas, err := b.coord.Topics(b.ctx)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return placement.Place(placement.Request{
		Brokers:           placement.BrokersOf(b.topics.liveBrokers()),
		Load:              placement.LoadOf(metas),
		Partitions:        int(n),
		ReplicationFactor: int(rf),
		Existing:          existing,
		Offset:            h.Sum64(),
	})
}

// newPartitions turns replica lists into partition states: the first
// replica (the preferred leader) leads, every replica is in the ISR.
func newPartitions(first int32, assignment [][]int32) []coord.PartitionMeta {
	out := make([]coord.PartitionMeta, len(assignment))
	for i, replicas := range assignment {
		out[i] = coord.PartitionMeta{Partition: first + int32(i), Leader: replicas[0], Replicas: append([]int32(nil), replicas...),
			ISR: append([]int32(nil), replicas...)}
	}
	return out
}

// createTopic creates a topic wherever the request arrived: on the
// controller directly, elsewhere by forwarding CreateTopics to it, then
// waiting (briefly) until this broker's metadata has the topic. A nil topic
// with a nil error means it was created but is not visible here yet.
func (b *Broker) createTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*topic, error) {
	if _, ok := b.ctrl.activeTerm(ctx); ok {
		assignment, err := b.ctrl.placeTopic(name, partitions, rf, nil)
		if err != nil {
			return nil, err
		}
		return b.topics.create(ctx, name, assignment, configs)
	}
	if err := b.forwardCreateTopic(ctx, name, partitions, rf, configs); err != nil {
		return nil, err
	}
	return b.topics.waitFor(ctx, name, 5*time.Second), nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
