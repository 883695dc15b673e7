package coord

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/consul/api"
)

// This file is the controller role in Consul: the lock on <prefix>controller
// held by the broker's session (KRaft's active controller, elected here by
// Consul rather than by a Raft quorum of our own), the cluster id the first
// controller creates, and the clean-up of what an interrupted predecessor
// left behind.

// Campaign acquires the controller lock, waiting with blocking queries on
// the key while another broker holds it. The epoch is the key's ModifyIndex
// after the acquiring transaction: a Raft index, so greater than every
// earlier term's, cluster-wide. The term ends when the lock is lost (our
// session lapses or is destroyed, the key is deleted or taken) or at Close.
func (c *Consul) Campaign(ctx context.Context) (Term, error) {
	select {
	case c.campaign <- struct{}{}:
	case <-ctx.Done():
		return Term{}, ctx.Err()
	}
	defer func() { <-c.campaign }()
	backoff := 50 * time.Millisecond
	for {
		c.mu.Lock()
		closed, t := c.mu.closed, c.mu.term
		c.mu.Unlock()
		if closed {
			return Term{}, ErrClosed
		}
		if t != nil {
			if err := c.ensureClusterID(ctx, t); err != nil {
				if errors.Is(err, ErrNotController) {
					c.endTerm(t) // Consul says the lock is not ours
					continue
				}
				return Term{}, err
			}
			return Term{Epoch: t.epoch, Done: t.done}, nil
		}
		sid, err := c.waitSession(ctx)
		if err != nil {
			return Term{}, err
		}
		won, index, err := c.tryLock(ctx, sid)
		if err == nil && won {
			backoff = 50 * time.Millisecond
			continue
		}
		switch {
		case err == nil && index == 0:
			err = c.sleepCtx(ctx, 10*time.Millisecond)
			if err != nil {
				return Term{}, err
			}
		case err == nil:
			err = c.waitController(ctx, index)
		}
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return Term{}, err
			}
			if err := c.sleepCtx(ctx, backoff); err != nil {
				return Term{}, err
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// tryLock tries once to take the controller lock with sid. When someone
// else holds it, index is the key's index to block on (0: try again soon).
func (c *Consul) tryLock(ctx context.Context, sid string) (bool, uint64, error) {
	key := c.keys.controller()
	cctx, cancel := c.callCtx(ctx)
	pair, meta, err := c.client.KV().Get(key, (&api.QueryOptions{}).WithContext(cctx))
	cancel()
	if err != nil {
		return false, 0, c.callErr(ctx, "reading the controller lock", err)
	}
	if pair != nil && pair.Session != "" && pair.Session != sid {
		return false, meta.LastIndex, nil
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	value := encodeJSON(controllerDoc{NodeID: c.opts.NodeID, Term: hex.EncodeToString(nonce[:])})
	ok, resp, err := c.txn(ctx, "acquiring the controller lock", api.TxnOps{opLock(key, value, sid)})
	if err != nil {
		return false, 0, err
	}
	if !ok {
		if sessionInvalid(resp) {
			return false, 0, fmt.Errorf("%w (%s)", errSessionGone, txnErrors(resp))
		}
		if lockDelayed(resp) {
			// The key of a lapsed holder: free again after the lock delay
			// (1ms for our sessions). Blocking on it would wait for a change
			// that does not come.
			return false, 0, nil
		}
		// Taken meanwhile: block on the key from the index we read.
		return false, meta.LastIndex, nil
	}
	res := resultFor(resp, key)
	if res == nil {
		return false, 0, errors.New("coord: acquiring the controller lock: no result")
	}
	t := &consulTerm{epoch: int64(res.ModifyIndex), session: sid, done: make(chan struct{})}
	c.mu.Lock()
	if c.mu.closed || c.mu.session != sid {
		c.mu.Unlock()
		return false, 0, errSessionGone
	}
	c.mu.term = t
	c.patchLocked(map[string]patch{key: setPatch(key, value, res)})
	c.mu.Unlock()
	c.log.Info("coord: controller elected", "node", c.opts.NodeID, "epoch", t.epoch)
	c.cleanUp(ctx, t)
	return true, 0, nil
}

// waitController blocks until the controller key changes from index (or a
// while passes: our session may have changed meanwhile).
func (c *Consul) waitController(ctx context.Context, index uint64) error {
	wctx, cancel := mergeCtx(ctx, c.ctx)
	defer cancel()
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(wctx)
	_, _, err := c.client.KV().Get(c.keys.controller(), q)
	if err != nil {
		return c.callErr(ctx, "waiting for the controller lock", err)
	}
	return nil
}

// mergeCtx is ctx, also cancelled when done is.
func mergeCtx(ctx, done context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(done, cancel)
	return ctx, func() { stop(); cancel() }
}

// endTerm ends t if it is still the current term.
func (c *Consul) endTerm(t *consulTerm) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.term == t {
		c.endTermLocked()
	}
}

func (c *Consul) endTermLocked() {
	if t := c.mu.term; t != nil {
		close(t.done)
		c.mu.term = nil
	}
}

// fence is the current term and the operations every controller write
// starts with: the controller key is held by our session (check-session)
// and unchanged since the term began (check-index on its ModifyIndex, the
// term's epoch). The second also refuses a write left over from an earlier
// term of the same session.
func (c *Consul) fence() (*consulTerm, api.TxnOps, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, nil, ErrClosed
	}
	t := c.mu.term
	if t == nil {
		return nil, nil, ErrNotController
	}
	return t, t.fence(c.keys.controller()), nil
}

// fenceOps is how many operations fence returns.
const fenceOps = 2

// fenceFailed says whether a rolled-back transaction failed its fence.
func fenceFailed(resp *api.TxnResponse) bool {
	for i := 0; i < fenceOps; i++ {
		if failedAt(resp, i) {
			return true
		}
	}
	return false
}

// controllerTxnErr explains a rolled-back controller transaction of term t.
// A failed fence means Consul no longer sees t: it ends. The operation after
// the fence checks the topic key, and its failure is conflict
// (ErrTopicExists, ErrConflict); any other failure is a concurrent change of
// the keys written, ErrConflict.
func (c *Consul) controllerTxnErr(t *consulTerm, resp *api.TxnResponse, conflict error) error {
	switch {
	case fenceFailed(resp):
		c.endTerm(t)
		return fmt.Errorf("%w (%s)", ErrNotController, txnErrors(resp))
	case failedAt(resp, fenceOps):
		return fmt.Errorf("%w (%s)", conflict, txnErrors(resp))
	}
	return fmt.Errorf("%w (%s)", ErrConflict, txnErrors(resp))
}

// ensureClusterID creates <prefix>cluster-id if no controller has yet: a
// Kafka-style id (22 characters of URL-safe base64 of 16 random bytes),
// created with check-not-exists under the controller check, so exactly one
// is ever stored.
func (c *Consul) ensureClusterID(ctx context.Context, t *consulTerm) error {
	c.mu.Lock()
	have := c.mu.snap.view.clusterID
	c.mu.Unlock()
	if have != "" {
		return nil
	}
	key := c.keys.clusterID()
	cctx, cancel := c.callCtx(ctx)
	pair, _, err := c.client.KV().Get(key, (&api.QueryOptions{}).WithContext(cctx))
	cancel()
	if err != nil {
		return c.callErr(ctx, "reading the cluster id", err)
	}
	if pair != nil {
		if !validClusterID(string(pair.Value)) {
			// Readers log it; replacing a cluster's identity is an operator's
			// call, not ours.
			return nil
		}
		c.patch(map[string]patch{key: {index: pair.ModifyIndex, pair: pair}})
		return nil
	}
	var raw [16]byte
	rand.Read(raw[:])
	id := []byte(base64.RawURLEncoding.EncodeToString(raw[:]))
	ops := append(t.fence(c.keys.controller()), opCheckNotExists(key), opSet(key, id))
	ok, resp, err := c.txn(ctx, "creating the cluster id", ops)
	if err != nil {
		return err
	}
	if !ok {
		if fenceFailed(resp) {
			return ErrNotController
		}
		return c.ensureClusterID(ctx, t) // created meanwhile: read it
	}
	if res := resultFor(resp, key); res != nil {
		c.patch(map[string]patch{key: setPatch(key, id, res)})
	}
	c.log.Info("coord: cluster id created", "cluster_id", string(id))
	return nil
}

// cleanUp removes what an interrupted predecessor left: partition folders
// without a topic key, and partition keys beyond a topic's count. Best
// effort: failures are logged, and the next controller tries again.
func (c *Consul) cleanUp(ctx context.Context, t *consulTerm) {
	c.topicMu.Lock()
	defer c.topicMu.Unlock()
	c.mu.Lock()
	v := c.mu.snap.view
	c.mu.Unlock()
	ctrl := c.keys.controller()
	for _, name := range v.orphans {
		ops := append(t.fence(ctrl), opCheckNotExists(c.keys.topic(name)), opDeleteTree(c.keys.partitions(name)))
		ok, resp, err := c.txn(ctx, "removing orphan partition keys", ops)
		if err != nil || !ok {
			c.log.Warn("coord: removing partition keys of a topic that does not exist", "topic", name, "err", err, "txn", txnErrors(resp))
			continue
		}
		c.log.Info("coord: removed partition keys of a topic that does not exist", "topic", name)
	}
	for name, extra := range v.extra {
		ts, ok := v.topics[name]
		if !ok {
			continue
		}
		for len(extra) > 0 {
			n := min(len(extra), maxTxnOps-fenceOps-1)
			ops := append(t.fence(ctrl), opCheckIndex(c.keys.topic(name), ts.index))
			for _, p := range extra[:n] {
				ops = append(ops, opDelete(c.keys.partition(name, p)))
			}
			extra = extra[n:]
			ok, resp, err := c.txn(ctx, "removing stray partition keys", ops)
			if err != nil || !ok {
				c.log.Warn("coord: removing partition keys beyond a topic's count", "topic", name, "err", err, "txn", txnErrors(resp))
				break
			}
		}
	}
}
