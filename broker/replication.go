package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/fetchsession"
	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/broker/peer"
	"github.com/strata-broker/strata/broker/replica"
)

// The follower side of replication: Kafka's ReplicaFetcherManager with one
// fetcher per leader broker. A fetcher reconciles each partition it takes
// over with the leader first — OffsetForLeaderEpoch about the follower's
// latest epoch, truncating where the logs part (KIP-101, KIP-279), so logs
// never diverge — then fetches every partition it follows from that leader
// in one replica Fetch (v15, ReplicaState with this broker's epoch, KIP-903;
// LastFetchedEpoch, so the leader can answer DivergingEpoch), appending the
// leader's batches with the leader's offsets and epochs.
//
// Partitions move between fetchers as leaders change. Whoever owns a
// partition (replicaManager.owner) is the only one that may truncate or
// append to it, checked under the partition's follow lock, so a fetch
// answered by an old leader can never land after a new fetcher truncated.

// replicaFetchVersion is the Fetch version followers send: v15 carries
// ReplicaState (KIP-903) and names topics by id.
const replicaFetchVersion = 15

type replicaManager struct {
	b *Broker

	mu       sync.Mutex
	fetchers map[int32]*fetcher
	owner    map[*partition.Partition]*followState
}

// followState is one partition followed from one leader at one epoch.
type followState struct {
	p       *partition.Partition
	topicID [16]byte
	leader  int32
	epoch   int32
	// lock serialises truncation and appends to p between fetchers; it is
	// shared by every followState of the same partition.
	lock *sync.Mutex
	// reconciled: truncation with this leader epoch is done.
	reconciled bool
	// askEpoch is the epoch to ask OffsetForLeaderEpoch about next, -2 for
	// the log's latest.
	askEpoch     int32
	backoffUntil time.Time
}

func newReplicaManager(b *Broker) *replicaManager {
	return &replicaManager{b: b, fetchers: map[int32]*fetcher{}, owner: map[*partition.Partition]*followState{}}
}

// follow makes p fetch from leader at epoch; a partition already followed
// there is left alone, one followed elsewhere (or at another epoch) moves
// and is reconciled again.
func (m *replicaManager) follow(p *partition.Partition, topicID [16]byte, leader, epoch int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.owner[p]
	if old != nil && old.leader == leader && old.epoch == epoch {
		return
	}
	lock := &sync.Mutex{}
	if old != nil {
		lock = old.lock
		if f := m.fetchers[old.leader]; f != nil {
			f.remove(p)
		}
	}
	fs := &followState{p: p, topicID: topicID, leader: leader, epoch: epoch, lock: lock, askEpoch: -2}
	m.owner[p] = fs
	f := m.fetchers[leader]
	if f == nil {
		f = &fetcher{m: m, leader: leader, kick: make(chan struct{}, 1), parts: map[*partition.Partition]*followState{}}
		if !m.b.goBackground(f.run) {
			return
		}
		m.fetchers[leader] = f
	}
	f.add(fs)
}

// unfollow stops fetching p (it became leader, or is gone).
func (m *replicaManager) unfollow(p *partition.Partition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fs := m.owner[p]
	if fs == nil {
		return
	}
	delete(m.owner, p)
	if f := m.fetchers[fs.leader]; f != nil {
		f.remove(p)
	}
	// Wait out a truncation or append in progress, so the caller may act
	// as leader (or delete the log) right after.
	fs.lock.Lock()
	fs.lock.Unlock()
}

// owns reports whether fs is still p's current follow state.
func (m *replicaManager) owns(fs *followState) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owner[fs.p] == fs
}

// brokersChanged wakes every fetcher: a leader's address may have changed or
// it may be back.
func (m *replicaManager) brokersChanged() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.fetchers {
		f.wake()
	}
}

// followed lists the partitions being followed and from whom (for metrics
// and status).
func (m *replicaManager) followed() map[*partition.Partition]int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[*partition.Partition]int32, len(m.owner))
	for p, fs := range m.owner {
		out[p] = fs.leader
	}
	return out
}

// fetcher fetches from one leader.
type fetcher struct {
	m      *replicaManager
	leader int32
	kick   chan struct{}

	mu    sync.Mutex
	parts map[*partition.Partition]*followState

	conn *peer.Conn // owned by the run goroutine
	// session is the fetch session with the leader (KIP-227), owned by the
	// run goroutine; a new connection starts it over.
	session fetchsession.Handler
}

func (f *fetcher) add(fs *followState) {
	f.mu.Lock()
	f.parts[fs.p] = fs
	f.mu.Unlock()
	f.wake()
}

func (f *fetcher) remove(p *partition.Partition) {
	f.mu.Lock()
	delete(f.parts, p)
	f.mu.Unlock()
	f.wake()
}

func (f *fetcher) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *fetcher) snapshot() []*followState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*followState, 0, len(f.parts))
	for _, fs := range f.parts {
		out = append(out, fs)
	}
	return out
}

// run is the fetcher's loop until the broker closes. It never stops on its
// own: with nothing to fetch it waits to be kicked.
func (f *fetcher) run() {
	b := f.m.b
	defer func() {
		if f.conn != nil {
			f.conn.Close()
		}
	}()
	backoff := 100 * time.Millisecond
	for b.ctx.Err() == nil {
		parts := f.snapshot()
		now := time.Now()
		var ready []*followState
		for _, fs := range parts {
			if now.After(fs.backoffUntil) {
				ready = append(ready, fs)
			}
		}
		if len(ready) == 0 {
			f.idle(len(parts) > 0)
			continue
		}
		if err := f.connect(); err != nil {
			b.log.Debug("replica fetcher cannot reach the leader", "leader", f.leader, "err", err)
			f.sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if err := f.round(ready); err != nil {
			b.metrics.replicaFetchErrors.Inc()
			if b.ctx.Err() == nil {
				b.log.Info("replica fetch failed; reconnecting", "leader", f.leader, "err", err)
			}
			f.conn.Close()
			f.conn = nil
			f.sleep(backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// idle waits for work: a kick, or (when partitions are backing off) a short
// while.
func (f *fetcher) idle(backingOff bool) {
	d := time.Hour
	if backingOff {
		d = 200 * time.Millisecond
	}
	f.sleep(d)
}

func (f *fetcher) sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.m.b.ctx.Done():
	case <-f.kick:
	case <-t.C:
	}
}

// connect dials the leader at its registered address if not connected.
func (f *fetcher) connect() error {
	if f.conn != nil {
		return nil
	}
	b := f.m.b
	addr := ""
	for _, br := range b.topics.liveBrokers() {
		if br.NodeID == f.leader {
			addr = net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))
		}
	}
	if addr == "" {
		return fmt.Errorf("leader %d is not registered", f.leader)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	c, err := peer.Dial(ctx, addr, fmt.Sprintf("broker-%d-fetcher", b.opts.NodeID))
	if err != nil {
		return err
	}
	f.conn = c
	f.session.Reset()
	return nil
}

// round reconciles partitions new to this leader epoch, then fetches once.
func (f *fetcher) round(ready []*followState) error {
	var reconcile, fetch []*followState
	for _, fs := range ready {
		if fs.reconciled {
			fetch = append(fetch, fs)
		} else {
			reconcile = append(reconcile, fs)
		}
	}
	if len(reconcile) > 0 {
		if err := f.reconcile(reconcile); err != nil {
			return err
		}
		for _, fs := range reconcile {
			if fs.reconciled {
				fetch = append(fetch, fs)
			}
		}
	}
	if len(fetch) == 0 {
		return nil
	}
	return f.fetch(fetch)
}

// reconcile asks the leader, with OffsetForLeaderEpoch, where each
// partition's latest epoch ends, and truncates there (replica's rules). A
// follower with no epochs truncates to its high watermark.
func (f *fetcher) reconcile(parts []*followState) error {
	b := f.m.b
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	req.ReplicaID = b.opts.NodeID
	byTopic := map[string]int{}
	asked := map[string]map[int32]*followState{}
	for _, fs := range parts {
		fl := fs.p.FollowerLog()
		if fs.askEpoch == -2 {
			t := replica.StartTruncation(fl)
			if t.Done {
				f.truncate(fs, t)
				continue
			}
			fs.askEpoch = t.NextEpoch
		}
		i, ok := byTopic[fs.p.Topic]
		if !ok {
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = fs.p.Topic
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			byTopic[fs.p.Topic] = i
			asked[fs.p.Topic] = map[int32]*followState{}
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = fs.p.Index, fs.epoch, fs.askEpoch
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		asked[fs.p.Topic][fs.p.Index] = fs
	}
	if len(req.Topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	kresp, err := f.conn.Do(ctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			fs := asked[rt.Topic][rp.Partition]
			if fs == nil {
				continue
			}
			if rp.ErrorCode != 0 {
				f.partitionError(fs, rp.ErrorCode, "offset for leader epoch")
				continue
			}
			t := replica.TruncateToEpochEnd(fs.p.FollowerLog(), replica.EpochEndOffset{Epoch: rp.LeaderEpoch, EndOffset: rp.EndOffset})
			f.truncate(fs, t)
		}
	}
	return nil
}

// truncate applies a truncation decision if fs still owns its partition.
func (f *fetcher) truncate(fs *followState, t replica.Truncation) {
	b := f.m.b
	fs.lock.Lock()
	defer fs.lock.Unlock()
	if !f.m.owns(fs) {
		return
	}
	before := fs.p.LogEndOffset()
	if err := fs.p.TruncateTo(t.Offset); err != nil {
		b.log.Error("follower truncation failed", "topic", fs.p.Topic, "partition", fs.p.Index, "offset", t.Offset, "err", err)
		fs.backoffUntil = time.Now().Add(time.Second)
		return
	}
	if t.Offset < before {
		b.log.Info("follower truncated its log to the leader's", "topic", fs.p.Topic, "partition", fs.p.Index,
			"leader", fs.leader, "leader_epoch", fs.epoch, "from", before, "to", fs.p.LogEndOffset())
	}
	if t.Done {
		fs.reconciled = true
		fs.askEpoch = -2
	} else {
		fs.askEpoch = t.NextEpoch
	}
}

// fetch sends one replica Fetch for parts and applies the answer. The
// request goes through the fetch session with the leader (KIP-227, Kafka's
// FetchSessionHandler): the first is full and opens the session; later ones
// name only partitions whose fetch position changed or that are new, and
// forget those no longer fetched (backing off, being reconciled, moved to
// another leader), while the leader reads every partition of the session
// and answers only those with news. A session error starts it over with a
// full fetch in the next round.
func (f *fetcher) fetch(parts []*followState) error {
	b := f.m.b
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(replicaFetchVersion)
	self := b.coord.Self()
	req.ReplicaID = -1
	req.ReplicaState.ID, req.ReplicaState.Epoch = b.opts.NodeID, self.Epoch
	req.MaxWaitMillis = b.settings.replicaFetchWaitMaxMs
	req.MinBytes = 1
	req.MaxBytes = b.settings.replicaFetchRespMax
	want := make([]fetchsession.Partition, 0, len(parts))
	names := map[[16]byte]string{}
	sent := map[[16]byte]map[int32]*followState{}
	for _, fs := range parts {
		want = append(want, fetchsession.Partition{
			Key: fetchsession.Key{TopicID: fs.topicID, Partition: fs.p.Index},
			Params: fetchsession.Params{FetchOffset: fs.p.LogEndOffset(), LogStartOffset: fs.p.LocalLogStartOffset(),
				MaxBytes: b.settings.replicaFetchMaxBytes, CurrentLeaderEpoch: fs.epoch, LastFetchedEpoch: fs.p.LatestEpoch()},
		})
		names[fs.topicID] = fs.p.Topic
		if sent[fs.topicID] == nil {
			sent[fs.topicID] = map[int32]*followState{}
		}
		sent[fs.topicID][fs.p.Index] = fs
	}
	bld := f.session.Build(want)
	req.SessionID, req.SessionEpoch = bld.SessionID, bld.Epoch
	byTopic := map[[16]byte]int{}
	for _, wp := range bld.Partitions {
		i, ok := byTopic[wp.TopicID]
		if !ok {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = names[wp.TopicID], wp.TopicID
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			byTopic[wp.TopicID] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = wp.Partition
		rp.CurrentLeaderEpoch = wp.CurrentLeaderEpoch
		rp.FetchOffset = wp.FetchOffset
		rp.LastFetchedEpoch = wp.LastFetchedEpoch
		rp.LogStartOffset = wp.LogStartOffset
		rp.PartitionMaxBytes = wp.MaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	forgotten := map[[16]byte]int{}
	for _, k := range bld.Forgotten {
		i, ok := forgotten[k.TopicID]
		if !ok {
			ft := kmsg.NewFetchRequestForgottenTopic()
			ft.TopicID = k.TopicID
			req.ForgottenTopics = append(req.ForgottenTopics, ft)
			i = len(req.ForgottenTopics) - 1
			forgotten[k.TopicID] = i
		}
		req.ForgottenTopics[i].Partitions = append(req.ForgottenTopics[i].Partitions, k.Partition)
	}
	ctx, cancel := context.WithTimeout(b.ctx, time.Duration(req.MaxWaitMillis)*time.Millisecond+30*time.Second)
	defer cancel()
	// The response's record bytes alias the connection's buffer until the
	// next request, by which time apply has appended them.
	kresp, err := f.conn.DoReuse(ctx, req)
	if err != nil {
		f.session.Reset()
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if !f.session.Handle(bld, resp.ErrorCode, resp.SessionID) {
		switch err := kerr.ErrorForCode(resp.ErrorCode); {
		case errors.Is(err, kerr.FetchSessionIDNotFound), errors.Is(err, kerr.InvalidFetchSessionEpoch), errors.Is(err, kerr.FetchSessionTopicIDError):
			b.log.Info("replica fetch session reset; next fetch is a full one", "leader", f.leader, "session", bld.SessionID, "epoch", bld.Epoch, "err", err)
			return nil
		default:
			return fmt.Errorf("replica fetch from %d: %w", f.leader, err)
		}
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			fs := sent[rt.TopicID][rp.Partition]
			if fs == nil {
				continue
			}
			f.apply(fs, rp)
		}
	}
	return nil
}

// apply handles one partition of a replica fetch response.
func (f *fetcher) apply(fs *followState, rp kmsg.FetchResponseTopicPartition) {
	b := f.m.b
	if rp.ErrorCode != 0 {
		if rp.ErrorCode == kerr.OffsetOutOfRange.Code {
			f.outOfRange(fs, rp.LogStartOffset)
			return
		}
		f.partitionError(fs, rp.ErrorCode, "fetch")
		return
	}
	if rp.DivergingEpoch.EndOffset >= 0 {
		t := replica.TruncateOnDivergingEpoch(fs.p.FollowerLog(), replica.EpochEndOffset{Epoch: rp.DivergingEpoch.Epoch, EndOffset: rp.DivergingEpoch.EndOffset})
		if t.Offset >= fs.p.LogEndOffset() && t.Done {
			// Nothing to cut, yet the leader says we diverge: ask again
			// with OffsetForLeaderEpoch rather than loop.
			fs.reconciled = false
			return
		}
		f.truncate(fs, t)
		return
	}
	fs.lock.Lock()
	defer fs.lock.Unlock()
	if !f.m.owns(fs) {
		return
	}
	n, err := fs.p.AppendFollower(rp.RecordBatches, rp.HighWatermark, rp.LogStartOffset)
	if err != nil {
		b.log.Error("follower append failed; reconciling with the leader again", "topic", fs.p.Topic, "partition", fs.p.Index, "leader", fs.leader, "err", err)
		fs.reconciled = false
		fs.backoffUntil = time.Now().Add(500 * time.Millisecond)
		return
	}
	if n > 0 {
		b.metrics.replicationBytesIn.Add(float64(len(rp.RecordBatches)))
	}
}

// outOfRange: the follower's fetch position is outside the leader's log.
// Below its start (retention moved it while this replica was away, or the
// replica is new to a topic whose old data is in the bucket): start over
// there. Otherwise the logs disagree at the end: reconcile by epochs again.
func (f *fetcher) outOfRange(fs *followState, leaderLogStart int64) {
	b := f.m.b
	fs.lock.Lock()
	defer fs.lock.Unlock()
	if !f.m.owns(fs) {
		return
	}
	leo := fs.p.LogEndOffset()
	if leaderLogStart > leo {
		b.log.Info("follower starts over at the leader's log start", "topic", fs.p.Topic, "partition", fs.p.Index, "log_end", leo, "leader_log_start", leaderLogStart)
		if err := fs.p.ResetTo(leaderLogStart); err != nil {
			b.log.Error("follower reset failed", "topic", fs.p.Topic, "partition", fs.p.Index, "err", err)
			fs.backoffUntil = time.Now().Add(time.Second)
		}
		return
	}
	fs.reconciled = false
	fs.backoffUntil = time.Now().Add(200 * time.Millisecond)
}

// partitionError backs a partition off after a per-partition error: the
// leader moved (NOT_LEADER_OR_FOLLOWER, FENCED/UNKNOWN_LEADER_EPOCH) or does
// not know the topic yet (metadata still propagating). Metadata changes move
// it to the right fetcher; until then it waits.
func (f *fetcher) partitionError(fs *followState, code int16, what string) {
	b := f.m.b
	err := kerr.ErrorForCode(code)
	switch {
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.FencedLeaderEpoch), errors.Is(err, kerr.UnknownLeaderEpoch),
		errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		b.log.Debug("replica "+what+" refused; waiting for metadata", "topic", fs.p.Topic, "partition", fs.p.Index, "leader", fs.leader, "err", err)
	default:
		b.log.Warn("replica "+what+" failed", "topic", fs.p.Topic, "partition", fs.p.Index, "leader", fs.leader, "err", err)
	}
	fs.backoffUntil = time.Now().Add(250 * time.Millisecond)
}
