package coord

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"
)

// This file holds the Consul coordinator's metadata writes. Each is one or
// more transactions that start with the writer's fence (check-session on the
// controller key, or on our registration key for a leader's ISR change) and
// check-and-set every key they change; on success the written keys are
// patched into the snapshot so the caller's next read sees them.

// chunkOps is how many partition keys go in one transaction beside the
// checks (the fence and at most two more) that every chunk carries.
const chunkOps = maxTxnOps - fenceOps - 2

func (c *Consul) CreateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error) {
	term, fence, err := c.fence()
	if err != nil {
		return TopicMeta{}, err
	}
	if !validTopicName(t.Name) {
		return TopicMeta{}, fmt.Errorf("coord: invalid topic name %q", t.Name)
	}
	if len(t.Partitions) > maxPartitions {
		return TopicMeta{}, fmt.Errorf("coord: %d partitions is more than %d", len(t.Partitions), maxPartitions)
	}
	c.topicMu.Lock()
	defer c.topicMu.Unlock()
	c.mu.Lock()
	_, exists := c.mu.snap.view.topics[t.Name]
	c.mu.Unlock()
	if exists {
		return TopicMeta{}, ErrTopicExists
	}
	t = t.Clone()
	for t.ID == ([16]byte{}) {
		rand.Read(t.ID[:])
	}
	t.Version = 1
	for i := range t.Partitions {
		t.Partitions[i].Partition = int32(i)
	}
	tkey := c.keys.topic(t.Name)
	patches := map[string]patch{}

	// Partition keys first, in chunks; the first chunk also clears whatever
	// an interrupted earlier attempt left under the name.
	for start := 0; start == 0 || start < len(t.Partitions); start += chunkOps {
		ops := append(slices.Clone(fence), opCheckNotExists(tkey))
		if start == 0 {
			ops = append(ops, opDeleteTree(c.keys.partitions(t.Name)))
		}
		end := min(start+chunkOps, len(t.Partitions))
		for _, p := range t.Partitions[start:end] {
			ops = append(ops, opCAS(c.keys.partition(t.Name, p.Partition), 0, encodePartition(p)))
		}
		ok, resp, err := c.txn(ctx, "creating partition keys", ops)
		if err == nil && !ok {
			err = c.controllerTxnErr(term, resp, ErrTopicExists)
		}
		if err != nil {
			if start > 0 {
				c.abandonCreate(t.Name, fence)
			}
			return TopicMeta{}, err
		}
		for _, p := range t.Partitions[start:end] {
			k := c.keys.partition(t.Name, p.Partition)
			if res := resultFor(resp, k); res != nil {
				patches[k] = setPatch(k, encodePartition(p), res)
			}
		}
		if end == len(t.Partitions) {
			break
		}
	}

	// The topic key last: the topic exists from this transaction on.
	idKey, doc := c.keys.topicID(t.ID), encodeTopic(t)
	ops := append(slices.Clone(fence), opCheckNotExists(tkey), opCheckNotExists(idKey),
		opSet(tkey, doc), opSet(idKey, []byte(t.Name)))
	ok, resp, err := c.txn(ctx, "creating the topic key", ops)
	if err == nil && !ok {
		err = c.controllerTxnErr(term, resp, ErrTopicExists)
		if failedAt(resp, fenceOps+1) && !fenceFailed(resp) && !failedAt(resp, fenceOps) {
			err = fmt.Errorf("coord: topic id %x already in use", t.ID)
		}
	}
	if err != nil {
		c.abandonCreate(t.Name, fence)
		return TopicMeta{}, err
	}
	for _, k := range []string{tkey, idKey} {
		v := doc
		if k == idKey {
			v = []byte(t.Name)
		}
		if res := resultFor(resp, k); res != nil {
			patches[k] = setPatch(k, v, res)
		}
	}
	c.patch(patches)
	return t, nil
}

// abandonCreate removes the partition keys of a CreateTopic that failed
// after writing some, unless the topic exists after all. Best effort: the
// next controller removes what is left.
func (c *Consul) abandonCreate(name string, fence api.TxnOps) {
	ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
	defer cancel()
	c.txn(ctx, "abandoning a topic creation", append(slices.Clone(fence),
		opCheckNotExists(c.keys.topic(name)), opDeleteTree(c.keys.partitions(name))))
}

func (c *Consul) UpdateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error) {
	term, fence, err := c.fence()
	if err != nil {
		return TopicMeta{}, err
	}
	if len(t.Partitions) > maxPartitions {
		return TopicMeta{}, fmt.Errorf("coord: %d partitions is more than %d", len(t.Partitions), maxPartitions)
	}
	c.topicMu.Lock()
	defer c.topicMu.Unlock()
	c.mu.Lock()
	old, ok := c.mu.snap.view.topics[t.Name]
	c.mu.Unlock()
	if !ok {
		return TopicMeta{}, ErrUnknownTopic
	}
	if old.meta.Version != t.Version {
		return TopicMeta{}, ErrConflict
	}
	next := old.meta.Clone()
	next.Configs = maps.Clone(t.Configs)
	if next.Configs == nil {
		next.Configs = map[string]string{}
	}
	next.Version++
	// Existing partitions keep their stored state; only new ones are taken.
	for i := len(next.Partitions); i < len(t.Partitions); i++ {
		p := t.Partitions[i].Clone()
		p.Partition = int32(i)
		next.Partitions = append(next.Partitions, p)
	}
	tkey := c.keys.topic(t.Name)
	patches := map[string]patch{}
	added := next.Partitions[len(old.meta.Partitions):]
	for len(added) > 0 {
		n := min(len(added), chunkOps)
		ops := append(slices.Clone(fence), opCheckIndex(tkey, old.index))
		for _, p := range added[:n] {
			// A plain set: keys beyond the stored count belong to no one
			// (leftovers of an interrupted increase are overwritten).
			ops = append(ops, opSet(c.keys.partition(t.Name, p.Partition), encodePartition(p)))
		}
		ok, resp, err := c.txn(ctx, "adding partition keys", ops)
		if err == nil && !ok {
			err = c.controllerTxnErr(term, resp, ErrConflict)
		}
		if err != nil {
			return TopicMeta{}, err
		}
		for _, p := range added[:n] {
			k := c.keys.partition(t.Name, p.Partition)
			if res := resultFor(resp, k); res != nil {
				patches[k] = setPatch(k, encodePartition(p), res)
			}
		}
		added = added[n:]
	}
	doc := encodeTopic(next)
	ok, resp, err := c.txn(ctx, "updating the topic key", append(slices.Clone(fence), opCAS(tkey, old.index, doc)))
	if err == nil && !ok {
		err = c.controllerTxnErr(term, resp, ErrConflict)
	}
	if err != nil {
		return TopicMeta{}, err
	}
	if res := resultFor(resp, tkey); res != nil {
		patches[tkey] = setPatch(tkey, doc, res)
	}
	c.patch(patches)
	return next, nil
}

func (c *Consul) DeleteTopic(ctx context.Context, name string) error {
	term, fence, err := c.fence()
	if err != nil {
		return err
	}
	c.topicMu.Lock()
	defer c.topicMu.Unlock()
	c.mu.Lock()
	old, ok := c.mu.snap.view.topics[name]
	c.mu.Unlock()
	if !ok {
		return ErrUnknownTopic
	}
	tkey, idKey := c.keys.topic(name), c.keys.topicID(old.meta.ID)
	// One transaction: the topic key goes first, its id and partition folder
	// with it (delete-tree is one operation, whatever the partition count).
	ok, resp, err := c.txn(ctx, "deleting the topic", append(slices.Clone(fence),
		opDeleteCAS(tkey, old.index), opDelete(idKey), opDeleteTree(c.keys.partitions(name))))
	if err == nil && !ok {
		err = c.controllerTxnErr(term, resp, ErrConflict)
	}
	if err != nil {
		return err
	}
	patches := map[string]patch{tkey: deletePatch(old.index), idKey: deletePatch(0)}
	for p, idx := range old.partIndex {
		patches[c.keys.partition(name, int32(p))] = deletePatch(idx)
	}
	c.patch(patches)
	return nil
}

// UpdatePartition writes one partition key: check-and-set on its
// ModifyIndex, fenced by the controller term (AsController) or by our
// registration key being held by our session (AsLeader: a broker whose
// session lapsed is no longer the leader Consul knows).
func (c *Consul) UpdatePartition(ctx context.Context, topic string, p PartitionMeta, by Writer) (PartitionMeta, error) {
	var term *consulTerm
	var fence api.TxnOps
	var fenceErr error
	switch by {
	case AsController:
		term, fence, fenceErr = c.fence()
	case AsLeader:
		c.mu.Lock()
		if sid := c.mu.regSession; sid != "" {
			fence = api.TxnOps{opCheckSession(c.keys.broker(c.opts.NodeID), sid)}
		} else {
			fenceErr = fmt.Errorf("%w: no live registration", ErrFenced)
		}
		if c.mu.closed {
			fenceErr = ErrClosed
		}
		c.mu.Unlock()
	default:
		return PartitionMeta{}, fmt.Errorf("coord: unknown writer %d", by)
	}
	if errors.Is(fenceErr, ErrClosed) {
		return PartitionMeta{}, ErrClosed
	}
	c.mu.Lock()
	ts, ok := c.mu.snap.view.topics[topic]
	c.mu.Unlock()
	if !ok || p.Partition < 0 || int(p.Partition) >= len(ts.meta.Partitions) {
		return PartitionMeta{}, ErrUnknownTopic
	}
	stored, index := ts.meta.Partitions[p.Partition].Clone(), ts.partIndex[p.Partition]
	key := c.keys.partition(topic, p.Partition)
	if check(stored, p, by, c.opts.NodeID) != nil {
		// The snapshot may trail the caller's knowledge: decide on the
		// stored value itself.
		fresh, freshIndex, err := c.readPartition(ctx, key, p.Partition)
		if err != nil {
			return stored, err
		}
		stored, index = fresh, freshIndex
	}
	if err := check(stored, p, by, c.opts.NodeID); err != nil {
		return stored, err
	}
	if fenceErr != nil {
		return stored, fenceErr
	}
	np := p.Clone()
	np.PartitionEpoch = stored.PartitionEpoch + 1
	value := encodePartition(np)
	ok, resp, err := c.txn(ctx, "updating the partition", append(slices.Clone(fence), opCAS(key, index, value)))
	if err != nil {
		return stored, err
	}
	if !ok {
		fenced := false
		for i := range fence {
			fenced = fenced || failedAt(resp, i)
		}
		switch {
		case fenced && by == AsController:
			c.endTerm(term)
			return stored, fmt.Errorf("%w (%s)", ErrNotController, txnErrors(resp))
		case fenced:
			return stored, fmt.Errorf("%w: registration lost (%s)", ErrFenced, txnErrors(resp))
		}
		fresh, _, rerr := c.readPartition(ctx, key, p.Partition)
		if rerr != nil {
			return stored, rerr
		}
		return fresh, ErrConflict
	}
	if res := resultFor(resp, key); res != nil {
		c.patch(map[string]patch{key: setPatch(key, value, res)})
	}
	return np.Clone(), nil
}

// check applies UpdatePartition's rules to the stored state: check-and-set
// on the partition epoch, and for a leader, that it is the stored leader at
// the caller's leader epoch.
func check(stored, p PartitionMeta, by Writer, self int32) error {
	if stored.PartitionEpoch != p.PartitionEpoch {
		return ErrConflict
	}
	if by == AsLeader && (stored.Leader != self || stored.LeaderEpoch != p.LeaderEpoch) {
		return ErrFenced
	}
	return nil
}

// readPartition reads one partition key from Consul.
func (c *Consul) readPartition(ctx context.Context, key string, p int32) (PartitionMeta, uint64, error) {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	pair, _, err := c.client.KV().Get(key, (&api.QueryOptions{}).WithContext(cctx))
	if err != nil {
		return PartitionMeta{}, 0, c.callErr(ctx, "reading the partition", err)
	}
	if pair == nil {
		return PartitionMeta{}, 0, ErrUnknownTopic
	}
	m, err := decodePartition(pair.Value, p)
	if err != nil {
		return PartitionMeta{}, 0, fmt.Errorf("%w %q: %v", errGarbage, key, err)
	}
	return m, pair.ModifyIndex, nil
}

// firstProducerID is where producer ids start in a new cluster, as in the
// embedded store.
const firstProducerID = 1000

// AllocateProducerIDs advances <prefix>producer-ids by n with check-and-set,
// retrying when another broker got there first (Kafka's
// AllocateProducerIds, served here by any broker rather than the
// controller).
func (c *Consul) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("coord: allocate %d producer ids", n)
	}
	key := c.keys.producerIDs()
	for {
		c.mu.Lock()
		closed := c.mu.closed
		c.mu.Unlock()
		if closed {
			return 0, ErrClosed
		}
		cctx, cancel := c.callCtx(ctx)
		pair, _, err := c.client.KV().Get(key, (&api.QueryOptions{}).WithContext(cctx))
		cancel()
		if err != nil {
			return 0, c.callErr(ctx, "reading the next producer id", err)
		}
		first, index := int64(firstProducerID), uint64(0)
		if pair != nil {
			if first, err = decodeProducerID(pair.Value); err != nil {
				return 0, fmt.Errorf("%w %q: %v", errGarbage, key, err)
			}
			index = pair.ModifyIndex
		}
		if first > 1<<62-n {
			return 0, errors.New("coord: producer ids exhausted")
		}
		ok, _, err := c.txn(ctx, "allocating producer ids", api.TxnOps{opCAS(key, index, encodeProducerID(first+n))})
		if err != nil {
			return 0, err
		}
		if ok {
			return first, nil
		}
		// Another broker allocated meanwhile: read again.
	}
}
