package coord

import (
	"context"
	"maps"
	"time"

	"github.com/hashicorp/consul/api"
)

// snapshot is the Consul coordinator's cached keyspace: the last watch
// result, overlaid with the results of our own writes that the watch has not
// caught up with yet (so a caller reading right after its write sees it),
// decoded into a view.
type snapshot struct {
	raw      map[string]*api.KVPair // the last watch result, by key
	index    uint64                 // its X-Consul-Index
	watchSeq uint64                 // watch requests issued so far
	patches  map[string]patch
	lastGood map[string]decoded
	logged   map[string]uint64 // problems logged: key -> ModifyIndex
	view     view
	ready    bool
	lastErr  error // the watch's last failure, for OpenConsul's error
}

// patch is one key as our own transaction left it.
type patch struct {
	// seq is the watch request in flight when the patch was made: any later
	// request was issued after our write had landed, so its result already
	// reflects it (or something newer) and supersedes the patch.
	seq uint64
	// index: for a write, the key's ModifyIndex after it; a watch result at
	// or past it supersedes the patch. For a delete, the key's last
	// ModifyIndex before it; a key in a result created after that is a newer
	// incarnation.
	index uint64
	pair  *api.KVPair // nil: deleted
}

func newSnapshot() snapshot {
	return snapshot{raw: map[string]*api.KVPair{}, patches: map[string]patch{},
		lastGood: map[string]decoded{}, logged: map[string]uint64{}, view: emptyView()}
}

// follow keeps the snapshot current with blocking queries on the whole
// prefix. Per Consul's blocking-query rules the wait index is reset to 0 when
// the returned index goes backwards (a restored snapshot, another cluster)
// and kept at least 1; errors back off exponentially up to 2s, so an outage
// costs little and recovery is quick.
func (c *Consul) follow() {
	defer c.wg.Done()
	var index uint64
	backoff := 50 * time.Millisecond
	failing := false
	for {
		c.mu.Lock()
		c.mu.snap.watchSeq++
		seq := c.mu.snap.watchSeq
		c.mu.Unlock()
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: watchWait}).WithContext(c.ctx)
		pairs, meta, err := c.client.KV().List(c.opts.Prefix, q)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				c.log.Warn("coord: consul watch failed; reads answer from the last snapshot", "prefix", c.opts.Prefix, "err", err)
			}
			failing = true
			c.mu.Lock()
			c.mu.snap.lastErr = err
			c.mu.Unlock()
			if c.sleepCtx(c.ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if failing {
			c.log.Info("coord: consul watch resumed", "prefix", c.opts.Prefix, "index", meta.LastIndex)
			failing = false
		}
		backoff = 50 * time.Millisecond
		for c.pauseWatch.Load() {
			if c.sleepCtx(c.ctx, 20*time.Millisecond) != nil {
				return
			}
		}
		switch {
		case meta.LastIndex < index:
			index = 0
		case meta.LastIndex == 0:
			index = 1
		default:
			index = meta.LastIndex
		}
		c.applyWatch(seq, meta.LastIndex, pairs)
	}
}

// applyWatch installs a watch result and drops the patches it supersedes.
func (c *Consul) applyWatch(seq, index uint64, pairs api.KVPairs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.mu.snap
	s.raw = make(map[string]*api.KVPair, len(pairs))
	for _, p := range pairs {
		s.raw[p.Key] = p
	}
	s.index = index
	for k, p := range s.patches {
		if p.seq < seq || (p.pair != nil && index >= p.index) {
			delete(s.patches, k)
		}
	}
	c.rebuildLocked()
	if !s.ready {
		s.ready = true
		close(c.ready)
	}
}

func (c *Consul) lastWatchErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.snap.lastErr
}

// patchLocked records keys as our own transaction left them and rebuilds.
func (c *Consul) patchLocked(ps map[string]patch) {
	if len(ps) == 0 {
		return
	}
	s := &c.mu.snap
	for k, p := range ps {
		p.seq = s.watchSeq
		s.patches[k] = p
	}
	c.rebuildLocked()
}

func (c *Consul) patch(ps map[string]patch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.patchLocked(ps)
}

// setPatch and deletePatch build patches from a transaction's outcome.
func setPatch(key string, value []byte, res *api.KVPair) patch {
	p := *res
	p.Key, p.Value = key, value
	return patch{index: res.ModifyIndex, pair: &p}
}

func deletePatch(lastIndex uint64) patch { return patch{index: lastIndex} }

// rebuildLocked decodes the raw pairs with the patches on top, logs new
// problems, sends the events that lead from the previous view to the new
// one, and ends roles the new view says we lost.
func (c *Consul) rebuildLocked() {
	s := &c.mu.snap
	eff := maps.Clone(s.raw)
	for k, p := range s.patches {
		if r, ok := eff[k]; ok {
			if p.pair != nil && r.ModifyIndex >= p.index {
				continue // the watch already has this write or a newer one
			}
			if p.pair == nil && r.CreateIndex > p.index {
				continue // re-created after our delete
			}
		}
		if p.pair == nil {
			delete(eff, k)
		} else {
			eff[k] = p.pair
		}
	}
	nv, probs := buildView(c.opts.Prefix, eff, s.lastGood, s.view)
	logged := make(map[string]uint64, len(probs))
	for _, p := range probs {
		logged[p.key] = p.index
		if idx, ok := s.logged[p.key]; ok && idx == p.index {
			continue
		}
		c.log.Log(context.Background(), p.level, "coord: consul keyspace: "+p.msg, "key", p.key, "modify_index", p.index)
	}
	s.logged = logged
	for _, ev := range diffViews(s.view, nv) {
		c.watch.send(ev)
	}
	s.view = nv

	if t := c.mu.term; t != nil && (nv.controller.session != t.session || nv.controller.epoch != t.epoch) {
		c.log.Info("coord: controller lock lost", "node", c.opts.NodeID, "epoch", t.epoch)
		c.endTermLocked()
	}
	if c.mu.regSession != "" && nv.brokers[c.opts.NodeID].session != c.mu.regSession {
		// Deleted or taken over; the keeper re-registers if our session lives
		// and nobody newer holds the key.
		c.mu.regSession = ""
	}
}
