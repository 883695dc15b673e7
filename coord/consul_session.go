package coord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// This file is the broker's liveness in Consul: the agent service and TTL
// check, the heartbeat loop (keep), the session bound to that check, and the
// registration key held by the session. Kafka's analogue is the KRaft broker
// heartbeat: a broker whose heartbeats stop for broker.session.timeout.ms is
// fenced, and it comes back with a new broker epoch (KIP-631, KIP-903).

var (
	// errSessionGone: a write carried a session Consul no longer has; the
	// keeper makes a new one.
	errSessionGone = errors.New("coord: consul session invalidated")
	// errNodeTaken: the node id's registration is held by another process's
	// session, which took it over after ours lapsed. The newer process owns
	// the node id; we do not take it back.
	errNodeTaken = errors.New("coord: node id registered by a newer process")
)

// RegisterBroker registers b (b.NodeID must be ConsulOptions.NodeID) under
// this broker's session and returns it with its epoch. A registration of the
// same node id held by another session belongs to an earlier process of
// this broker (a zombie: stopped, partitioned, or about to die): its session
// is destroyed, which fences it at once (its leader writes fail, its
// controller lock goes) instead of after a session timeout.
func (c *Consul) RegisterBroker(ctx context.Context, b BrokerInfo) (BrokerInfo, error) {
	if b.NodeID != c.opts.NodeID {
		return BrokerInfo{}, fmt.Errorf("coord: registering node %d with a coordinator opened for node %d", b.NodeID, c.opts.NodeID)
	}
	b.Epoch = 0
	for {
		sid, err := c.waitSession(ctx)
		if err != nil {
			return BrokerInfo{}, err
		}
		c.regMu.Lock()
		info, err := c.register(ctx, b, sid, true)
		if err == nil {
			c.mu.Lock()
			c.mu.want = &b
			c.mu.Unlock()
		}
		c.regMu.Unlock()
		if !errors.Is(err, errSessionGone) {
			return info, err
		}
		// The keeper notices within a heartbeat and makes a new session.
		if err := c.sleepCtx(ctx, c.opts.HeartbeatInterval); err != nil {
			return BrokerInfo{}, err
		}
	}
}

// register writes the registration key under sid: one transaction deletes
// whatever is there (check-and-set on its ModifyIndex) and locks a fresh key,
// so the key's CreateIndex, the broker epoch, is that transaction's Raft
// index. Caller holds regMu.
func (c *Consul) register(ctx context.Context, b BrokerInfo, sid string, takeover bool) (BrokerInfo, error) {
	key := c.keys.broker(b.NodeID)
	value := encodeBroker(b)
	for attempt := 0; ; attempt++ {
		if attempt == 10 {
			return BrokerInfo{}, fmt.Errorf("coord: registering node %d: %s keeps changing", b.NodeID, key)
		}
		cctx, cancel := c.callCtx(ctx)
		pair, _, err := c.client.KV().Get(key, (&api.QueryOptions{}).WithContext(cctx))
		cancel()
		if err != nil {
			return BrokerInfo{}, c.callErr(ctx, "reading the registration", err)
		}
		var ops api.TxnOps
		switch {
		case pair != nil && pair.Session != "" && pair.Session != sid:
			if !takeover {
				return BrokerInfo{}, errNodeTaken
			}
			c.log.Info("coord: fencing an earlier registration of this node id", "node", b.NodeID, "session", pair.Session)
			cctx, cancel := c.callCtx(ctx)
			_, err := c.client.Session().Destroy(pair.Session, (&api.WriteOptions{}).WithContext(cctx))
			cancel()
			if err != nil {
				return BrokerInfo{}, c.callErr(ctx, "destroying the earlier session", err)
			}
			continue // its keys are deleted now (Behavior=delete); read again
		case pair != nil:
			ops = append(ops, opCheckIndex(key, pair.ModifyIndex), opDelete(key))
		default:
			ops = append(ops, opCheckNotExists(key))
		}
		ops = append(ops, opLock(key, value, sid))
		ok, resp, err := c.txn(ctx, "registering the broker", ops)
		if err != nil {
			return BrokerInfo{}, err
		}
		if !ok {
			if sessionInvalid(resp) {
				return BrokerInfo{}, fmt.Errorf("%w (%s)", errSessionGone, txnErrors(resp))
			}
			// The key changed between the read and the write, or the lock
			// delay of a session just destroyed is still running.
			if err := c.sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return BrokerInfo{}, err
			}
			continue
		}
		res := resultFor(resp, key)
		if res == nil {
			return BrokerInfo{}, fmt.Errorf("coord: registering node %d: no result for %s", b.NodeID, key)
		}
		b.Epoch = int64(res.CreateIndex)
		c.mu.Lock()
		if c.mu.session == sid {
			c.mu.self = b
			c.mu.regSession = sid
		}
		c.patchLocked(map[string]patch{key: setPatch(key, value, res)})
		c.mu.Unlock()
		c.log.Info("coord: broker registered", "node", b.NodeID, "epoch", b.Epoch)
		return b, nil
	}
}

// SetShuttingDown rewrites the registration with ShuttingDown set, keeping
// its epoch (the key is rewritten, not re-created). A re-registration after
// a lapse keeps the flag.
func (c *Consul) SetShuttingDown(ctx context.Context) error {
	c.regMu.Lock()
	defer c.regMu.Unlock()
	c.mu.Lock()
	if c.mu.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.mu.want == nil {
		c.mu.Unlock()
		return nil
	}
	w := *c.mu.want
	w.ShuttingDown = true
	c.mu.want = &w
	sid, self := c.mu.regSession, c.mu.self
	c.mu.Unlock()
	if sid == "" {
		return nil // lapsed: the keeper re-registers with the flag
	}
	self.ShuttingDown = true
	key := c.keys.broker(self.NodeID)
	value := encodeBroker(self)
	ok, resp, err := c.txn(ctx, "marking the broker shutting down", api.TxnOps{
		opCheckSession(key, sid), opLock(key, value, sid)})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("coord: marking node %d shutting down: registration lost: %w (%s)", self.NodeID, ErrFenced, txnErrors(resp))
	}
	c.mu.Lock()
	if c.mu.regSession == sid {
		c.mu.self = self
	}
	if res := resultFor(resp, key); res != nil {
		c.patchLocked(map[string]patch{key: setPatch(key, value, res)})
	}
	c.mu.Unlock()
	return nil
}

// waitSession returns the live session, starting the keeper on first use.
func (c *Consul) waitSession(ctx context.Context) (string, error) {
	for {
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			return "", ErrClosed
		}
		if !c.mu.keeperStarted {
			c.mu.keeperStarted = true
			c.wg.Add(1)
			go c.keep()
		}
		sid, up := c.mu.session, c.mu.sessionUp
		c.mu.Unlock()
		if sid != "" {
			return sid, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return "", fmt.Errorf("coord: waiting for a consul session: %w", ctx.Err())
		case <-c.ctx.Done():
			return "", ErrClosed
		}
	}
}

// keeper is the heartbeat goroutine's own state.
type keeper struct {
	serviceUp bool
	lastOK    time.Time // start of the last round that confirmed the session
	failing   string    // the failure being logged, so a streak logs once
	taken     bool      // errNodeTaken logged
}

// keep runs a heartbeat round every HeartbeatInterval until Close.
func (c *Consul) keep() {
	defer c.wg.Done()
	var k keeper
	tick := time.NewTicker(c.opts.HeartbeatInterval)
	defer tick.Stop()
	for {
		if !c.pauseBeats.Load() {
			c.beat(&k)
			c.beats.Add(1)
		}
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// beat is one heartbeat round: pass the TTL check, confirm the session
// still exists (or make one), and only then — once the watched view has
// caught up with this broker's registration (viewCoversRegistration) — move
// SessionValidUntil to the round's start plus SessionTimeout. The agent reset the check's TTL after
// the round started, so neither the check nor the session can lapse before
// that.
//
// If the pass lands after the previous guarantee ran out (the process was
// stopped, or Consul was unreachable, for longer than SessionTimeout), the
// check may have gone critical and the session be about to be invalidated
// even though it still exists: it is destroyed and replaced, which gives the
// broker a new epoch, as Kafka fences a broker whose session timed out.
func (c *Consul) beat(k *keeper) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.SessionTimeout)
	defer cancel()
	start := time.Now()
	if !k.serviceUp {
		if err := c.registerService(ctx); err != nil {
			c.keeperFailed(k, "registering the agent service", err)
			return
		}
		k.serviceUp = true
	}
	err := c.client.Agent().UpdateTTLOpts(c.checkID, "", api.HealthPassing, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		var se api.StatusError
		if errors.As(err, &se) && se.Code == http.StatusNotFound {
			k.serviceUp = false // the agent lost it (restarted without its data): register again
		}
		c.keeperFailed(k, "passing the session check", err)
		return
	}
	passed := time.Now()
	c.mu.Lock()
	sid := c.mu.session
	c.mu.Unlock()
	if sid != "" && (k.lastOK.IsZero() || passed.After(k.lastOK.Add(c.opts.SessionTimeout))) {
		// Destroyed before a new one is made: were it left alive (our pass
		// keeps its check passing), it would hold our keys against us.
		if _, err := c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			c.keeperFailed(k, "destroying the lapsed session", err)
			return
		}
		c.log.Warn("coord: heartbeats stopped for longer than the session timeout; replaced the session",
			"node", c.opts.NodeID, "since_last", passed.Sub(k.lastOK))
		c.sessionLost(sid)
		sid = ""
	}
	if sid != "" {
		info, _, err := c.client.Session().Info(sid, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			c.keeperFailed(k, "reading the session", err)
			return
		}
		if info == nil {
			c.log.Warn("coord: consul session invalidated; making a new one", "node", c.opts.NodeID, "session", sid)
			c.sessionLost(sid)
			sid = ""
		}
	}
	if sid == "" {
		sid, err = c.createSession(ctx)
		if err != nil {
			c.keeperFailed(k, "creating a session", err)
			return
		}
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			c.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx))
			return
		}
		c.mu.session = sid
		close(c.mu.sessionUp)
		c.mu.Unlock()
	}
	k.lastOK = start
	if k.failing != "" {
		c.log.Info("coord: consul heartbeats resumed", "node", c.opts.NodeID)
		k.failing = ""
	}
	c.reregister(ctx, k, sid)
	if c.viewCoversRegistration() {
		c.validUntil.Store(int64(start.Add(c.opts.SessionTimeout).Sub(c.base)))
	}
}

// viewCoversRegistration reports whether the watched view is at least as
// new as this broker's registration (its key's creation index is the broker
// epoch). Until it is, SessionValidUntil does not move: a broker whose
// session lapsed (a long pause, Consul unreachable) and was just replaced
// may have been deposed meanwhile, and its view — the last watch result
// from before — may still name it leader. Acknowledging acks=0/1 writes
// then would make two leaders of one partition at once (the new one at a
// newer epoch; the zombie's records lost to truncation). A watch result
// at or past the new registration's index shows every election made before
// it. While registered under the same session this always holds.
func (c *Consul) viewCoversRegistration() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.regSession == "" || uint64(c.mu.self.Epoch) <= c.mu.snap.index
}

func (c *Consul) keeperFailed(k *keeper, what string, err error) {
	if k.failing != what {
		c.log.Warn("coord: consul heartbeat failed: "+what, "node", c.opts.NodeID, "err", err)
		k.failing = what
	}
}

// sessionLost forgets sid: no session, no lease, no controller term, no
// registration, until the keeper has made another.
func (c *Consul) sessionLost(sid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.session != sid {
		return
	}
	c.mu.session = ""
	c.mu.sessionUp = make(chan struct{})
	c.validUntil.Store(0)
	if t := c.mu.term; t != nil && t.session == sid {
		c.endTermLocked()
	}
	if c.mu.regSession == sid {
		c.mu.regSession = ""
	}
}

// reregister restores the registration under sid when RegisterBroker asked
// for one and it is not held by sid (lapsed, deleted): a new epoch, as a
// Kafka broker re-registers after being fenced. A registration taken over by
// a newer process is left alone. If RegisterBroker is running, it does the
// work and this round skips.
func (c *Consul) reregister(ctx context.Context, k *keeper, sid string) {
	if !c.regMu.TryLock() {
		return
	}
	defer c.regMu.Unlock()
	c.mu.Lock()
	want, have := c.mu.want, c.mu.regSession
	c.mu.Unlock()
	if want == nil || have == sid {
		return
	}
	_, err := c.register(ctx, *want, sid, false)
	switch {
	case errors.Is(err, errNodeTaken):
		if !k.taken {
			c.log.Error("coord: this node id is registered by a newer process; not taking it back", "node", want.NodeID)
			k.taken = true
		}
	case err != nil:
		c.log.Warn("coord: re-registering the broker", "node", want.NodeID, "err", err)
	default:
		k.taken = false
	}
}

// registerService registers this process's agent service and its TTL check.
// DeregisterCriticalServiceAfter removes the service of a process that died
// without Close, once its check has been critical that long.
func (c *Consul) registerService(ctx context.Context) error {
	reg := &api.AgentServiceRegistration{
		ID:   c.serviceID,
		Name: "strata",
		Meta: map[string]string{"node_id": strconv.Itoa(int(c.opts.NodeID)), "prefix": c.opts.Prefix},
		Check: &api.AgentServiceCheck{
			CheckID:                        c.checkID,
			Name:                           "strata broker session",
			TTL:                            c.opts.SessionTimeout.String(),
			Status:                         api.HealthPassing,
			DeregisterCriticalServiceAfter: deregisterAfter,
		},
	}
	return c.client.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx))
}

// createSession makes a session bound to our TTL check only. The body is
// written by hand because api.Session.Create drops an empty NodeChecks list,
// and Consul then binds the session to the agent's serfHealth check, which
// every broker using that agent shares (and which would keep a stopped
// broker's session alive). The api also omits a zero LockDelay, and Consul's
// default is 15s: a broker that takes over its own node id, or a controller
// elected after its predecessor's session lapsed, would wait that long.
func (c *Consul) createSession(ctx context.Context) (string, error) {
	body := map[string]any{
		"Name":          fmt.Sprintf("strata broker %d", c.opts.NodeID),
		"ServiceChecks": []api.ServiceCheck{{ID: c.checkID}},
		"NodeChecks":    []string{},
		"Behavior":      api.SessionBehaviorDelete,
		"LockDelay":     "1ms",
	}
	var out struct{ ID string }
	if _, err := c.client.Raw().Write("/v1/session/create", body, &out, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return "", err
	}
	if out.ID == "" {
		return "", errors.New("consul returned no session id")
	}
	return out.ID, nil
}
