package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/strata-broker/strata/broker/partition"
	"github.com/strata-broker/strata/coord"
	"github.com/strata-broker/strata/localstore"
)

// topic is the broker's in-memory view of one topic: metadata from coord and
// the partitions this broker hosts a replica of.
type topic struct {
	meta coord.TopicMeta
	cfg  *topicConfig
	// partitions is indexed by partition number; nil where this broker holds
	// no replica. len(meta.Partitions) is the topic's partition count.
	partitions []*partition.Partition
}

// count is the topic's number of partitions (hosted here or not).
func (t *topic) count() int32 { return int32(len(t.meta.Partitions)) }

// partition returns the hosted replica of partition i, nil if there is none.
func (t *topic) partition(i int32) *partition.Partition {
	if i < 0 || int(i) >= len(t.partitions) {
		return nil
	}
	return t.partitions[i]
}

// hosted lists the partitions this broker holds, in index order.
func (t *topic) hosted() []*partition.Partition {
	out := make([]*partition.Partition, 0, len(t.partitions))
	for _, p := range t.partitions {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// topicRegistry owns the broker's view of cluster metadata — topics, the
// open partition logs, the live brokers, the controller — kept in step with
// coord by reconciling on every coord.Watch event, so request handlers never
// call coord.
type topicRegistry struct {
	b *Broker

	mu sync.RWMutex
	// byName and byID index the same topics.
	byName     map[string]*topic
	byID       map[[16]byte]*topic
	brokers    []coord.BrokerInfo
	controller int32
	changed    chan struct{} // closed and replaced on every install

	// createMu serialises everything that opens, closes or deletes logs:
	// reconciliation and this broker's own topic creation and deletion, so
	// two paths can never both open one partition's log. It also guards
	// loading and inherited.
	createMu sync.Mutex
	// loading is true while load installs the metadata found at start-up.
	loading bool
	// inherited holds, per replicated partition (by topic id, so a topic
	// re-created under the same name starts afresh) whose metadata named
	// this broker leader at start-up, that leader epoch: a tenure of an
	// earlier process with this node id (see applyRole).
	inherited map[inheritedKey]int32

	stopWatch func()
}

func newTopicRegistry(b *Broker) *topicRegistry {
	r := &topicRegistry{b: b, byName: map[string]*topic{}, byID: map[[16]byte]*topic{}, controller: -1, inherited: map[inheritedKey]int32{}}
	b.metrics.reg.MustRegister(newPartitionCollector(b))
	return r
}

// load opens this broker's replicas of every topic at start-up, removes
// partition folders no topic owns, then follows coord's changes.
func (r *topicRegistry) load(ctx context.Context) error {
	metas, err := r.b.coord.Topics(ctx)
	if err != nil {
		return err
	}
	r.createMu.Lock()
	r.loading = true
	for _, m := range metas {
		if err := r.installLocked(m); err != nil {
			r.loading = false
			r.createMu.Unlock()
			return err
		}
	}
	r.loading = false
	r.createMu.Unlock()
	localstore.RemoveOrphanDirs(r.b.opts.DataDir, r.owns, r.b.log)
	r.refreshBrokers()
	r.stopWatch = r.b.coord.Watch(r.onEvent)
	return nil
}

// owns reports whether a partition folder belongs to a hosted replica.
func (r *topicRegistry) owns(name string, idx int32) bool {
	t := r.get(name)
	return t != nil && t.partition(idx) != nil
}

// onEvent reconciles with coord's current state for what the event names.
// It reads the current state rather than applying the event's payload, so an
// event that arrives after later changes (this broker's own writes install
// synchronously) can never roll the view back.
func (r *topicRegistry) onEvent(ev coord.Event) {
	switch ev.Kind {
	case coord.BrokersChanged, coord.ControllerChanged:
		r.refreshBrokers()
		r.b.replicas.brokersChanged()
		r.b.kickController()
	case coord.TopicCreated, coord.TopicUpdated, coord.TopicDeleted:
		if r.b.ctx.Err() != nil {
			return
		}
		if err := r.reconcile(ev.Topic.Name); err != nil {
			r.b.log.Error("cannot apply topic metadata", "topic", ev.Topic.Name, "err", err)
		}
		r.b.kickController()
	}
}

func (r *topicRegistry) refreshBrokers() {
	brokers, err := r.b.coord.Brokers(r.b.ctx)
	if err != nil {
		return
	}
	ctl, _ := r.b.coord.Controller()
	r.mu.Lock()
	r.brokers, r.controller = brokers, ctl
	r.mu.Unlock()
	r.b.ctrl.observeBrokers(brokers, time.Now())
}

// liveBrokers is the cached live broker set, sorted by node id.
func (r *topicRegistry) liveBrokers() []coord.BrokerInfo {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.brokers
}

// reconcile brings one topic's local state to what coord holds now.
func (r *topicRegistry) reconcile(name string) error {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	m, err := r.b.coord.Topic(r.b.ctx, name)
	if errors.Is(err, coord.ErrUnknownTopic) {
		if t := r.get(name); t != nil {
			return r.dropLocked(t, true)
		}
		return nil
	}
	if err != nil {
		return err
	}
	return r.installLocked(m)
}

// installLocked opens, reconfigures or re-roles this broker's replicas of a
// topic from its metadata. A topic re-created under the same name (another
// id) first has the old one's local data removed.
func (r *topicRegistry) installLocked(m coord.TopicMeta) error {
	old := r.get(m.Name)
	if old != nil && old.meta.ID != m.ID {
		if err := r.dropLocked(old, false); err != nil {
			return err
		}
		old = nil
	}
	cfg := old.cfgOrNil()
	if old == nil || old.meta.Version != m.Version {
		cfg = r.b.resolveTopicConfig(m.Configs)
	}
	t := &topic{meta: m, cfg: cfg, partitions: make([]*partition.Partition, len(m.Partitions))}
	var opened []*partition.Partition
	for i, pm := range m.Partitions {
		if old != nil && i < len(old.partitions) {
			t.partitions[i] = old.partitions[i]
		}
		p := t.partitions[i]
		if !slices.Contains(pm.Replicas, r.b.opts.NodeID) {
			if p != nil {
				// The replica moved to other brokers (reassignment).
				r.b.replicas.unfollow(p)
				if err := p.Delete(); err != nil {
					r.b.log.Error("delete a replica moved away", "topic", m.Name, "partition", pm.Partition, "err", err)
				}
				t.partitions[i] = nil
			}
			continue
		}
		if p == nil {
			var err error
			p, err = partition.Open(partition.Options{
				Dir: localstore.PartitionDir(r.b.opts.DataDir, m.Name, pm.Partition), Topic: m.Name, Index: pm.Partition,
				Config: cfg.part, LeaderEpoch: pm.LeaderEpoch, Clock: r.b.opts.Clock, Logger: r.b.log,
			})
			if err != nil {
				for _, q := range opened {
					q.Close()
				}
				return err
			}
			opened = append(opened, p)
			t.partitions[i] = p
		} else if old != nil && old.cfg != cfg {
			p.SetConfig(cfg.part)
		}
		r.applyRole(m, p, pm)
	}
	r.b.attachTiering(t)
	r.mu.Lock()
	r.byName[m.Name] = t
	r.byID[m.ID] = t
	if r.changed != nil {
		close(r.changed)
	}
	r.changed = make(chan struct{})
	r.mu.Unlock()
	// The group and transaction coordinators look their partitions up in
	// the registry, so they hear of leadership only once the topic is there.
	for _, p := range t.hosted() {
		r.b.offsetsLeadership(m.Name, p, p.IsLeader())
		r.b.transactionLeadership(m.Name, p, p.IsLeader())
	}
	return nil
}

// applyRole makes a hosted replica leader or follower as pm says (Kafka's
// LeaderAndIsr handling): the leader serves and owns ISR changes; a
// follower reconciles with and fetches from the leader; with no leader
// (offline) it waits.
//
// A leadership found in the metadata at start-up is not resumed. load runs
// before RegisterBroker, so no controller can have elected this process
// yet: the tenure belongs to an earlier process with this node id, whose
// log may have been longer (a wiped or replaced disk, KIP-903's case).
// Resuming it would serve that shorter log at the old leader epoch, and the
// followers, reconnecting to the same leader at the same epoch, would
// truncate to it — acknowledged records lost. Kafka's restarted broker waits
// for the controller the same way. So the replica stays passive (neither
// leading nor fetching, answering NOT_LEADER_OR_FOLLOWER) until the
// controller, seeing the new registration, writes a newer leader epoch:
// another ISR member's, or this broker's own when it is the last one.
// Partitions with one replica have no one to wait for and lead at once.
func (r *topicRegistry) applyRole(m coord.TopicMeta, p *partition.Partition, pm coord.PartitionMeta) {
	self := r.b.opts.NodeID
	k := inheritedKey{m.ID, pm.Partition}
	if pm.Leader == self && len(pm.Replicas) > 1 {
		if r.loading {
			r.inherited[k] = pm.LeaderEpoch
		}
		if e, ok := r.inherited[k]; ok && pm.LeaderEpoch <= e {
			if r.loading {
				r.b.log.Info("not resuming a leadership of an earlier process; waiting for the controller", "topic", m.Name,
					"partition", pm.Partition, "leader_epoch", pm.LeaderEpoch)
			}
			p.BecomeFollower(pm)
			r.b.replicas.unfollow(p)
			return
		}
	}
	delete(r.inherited, k)
	switch {
	case pm.Leader == self:
		r.b.replicas.unfollow(p)
		if err := p.BecomeLeader(pm, self, time.Duration(r.b.settings.replicaLagTimeMaxMs)*time.Millisecond); err != nil {
			r.b.log.Error("cannot become leader", "topic", m.Name, "partition", pm.Partition, "err", err)
			return
		}
	case pm.Leader >= 0:
		p.BecomeFollower(pm)
		r.b.replicas.follow(p, m.ID, pm.Leader, pm.LeaderEpoch)
	default:
		p.BecomeFollower(pm)
		r.b.replicas.unfollow(p)
	}
}

// inheritedKey names one partition of one topic incarnation.
type inheritedKey struct {
	topicID   [16]byte
	partition int32
}

func (t *topic) cfgOrNil() *topicConfig {
	if t == nil {
		return nil
	}
	return t.cfg
}

// dropLocked forgets a deleted topic and deletes its local logs and, where
// this broker was a partition's leader, its remote data.
func (r *topicRegistry) dropLocked(t *topic, deleteRemote bool) error {
	r.mu.Lock()
	if r.byName[t.meta.Name] == t {
		delete(r.byName, t.meta.Name)
	}
	if r.byID[t.meta.ID] == t {
		delete(r.byID, t.meta.ID)
	}
	r.mu.Unlock()
	var errs []error
	ctx, cancel := context.WithTimeout(r.b.ctx, 5*time.Minute)
	defer cancel()
	for _, p := range t.hosted() {
		r.b.replicas.unfollow(p)
		r.b.offsetsLeadership(t.meta.Name, p, false)
		r.b.transactionLeadership(t.meta.Name, p, false)
		tp := p.Tier()
		if err := p.Delete(); err != nil {
			errs = append(errs, fmt.Errorf("delete %s-%d: %w", t.meta.Name, p.Index, err))
		}
		if tp != nil && deleteRemote && t.meta.Partitions[p.Index].Leader == r.b.opts.NodeID {
			if err := tp.DeleteAll(ctx); err != nil {
				errs = append(errs, fmt.Errorf("delete remote data of %s-%d: %w", t.meta.Name, p.Index, err))
			}
		}
	}
	if r.b.tier != nil && t.cfg.remoteStorage && deleteRemote {
		if err := r.b.tier.DeleteTopicConfig(ctx, t.meta.Name); err != nil {
			errs = append(errs, err)
		}
	}
	r.b.log.Info("deleted topic", "topic", t.meta.Name)
	return errors.Join(errs...)
}

func (r *topicRegistry) get(name string) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byName[name]
}

func (r *topicRegistry) getByID(id [16]byte) *topic {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// partition returns a topic and its hosted replica of partition idx (nil if
// the topic is unknown or the replica is not here).
func (r *topicRegistry) partition(name string, idx int32) (*topic, *partition.Partition) {
	t := r.get(name)
	if t == nil {
		return nil, nil
	}
	return t, t.partition(idx)
}

// changes is a channel closed at the next install: take it before looking,
// then wait on it, and no change in between is missed.
func (r *topicRegistry) changes() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.changed == nil {
		r.changed = make(chan struct{})
	}
	return r.changed
}

// waitFor waits up to d for a topic to appear in this broker's view (a
// topic another broker created reaches it through coord.Watch).
func (r *topicRegistry) waitFor(ctx context.Context, name string, d time.Duration) *topic {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		ch := r.changes()
		t := r.get(name)
		if t != nil {
			return t
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// all returns topics sorted by name.
func (r *topicRegistry) all() []*topic {
	r.mu.RLock()
	out := make([]*topic, 0, len(r.byName))
	for _, t := range r.byName {
		out = append(out, t)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].meta.Name < out[j].meta.Name })
	return out
}

// allPartitions lists every hosted partition, by topic then index.
func (r *topicRegistry) allPartitions() []*partition.Partition {
	var out []*partition.Partition
	for _, t := range r.all() {
		out = append(out, t.hosted()...)
	}
	return out
}

var errTopicExists = coord.ErrTopicExists

// create stores a new topic in coord with the given replica lists (the
// controller placed them) and opens this broker's replicas of it. Controller
// only: coord refuses the write otherwise.
func (r *topicRegistry) create(ctx context.Context, name string, assignment [][]int32, configs map[string]string) (*topic, error) {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	if r.get(name) != nil {
		return nil, errTopicExists
	}
	m := coord.TopicMeta{Name: name, Configs: configs, Internal: isInternalTopic(name), Partitions: newPartitions(0, assignment)}
	stored, err := r.b.coord.CreateTopic(ctx, m)
	if err != nil {
		return nil, err
	}
	if err := r.installLocked(stored); err != nil {
		// Keep coord and disk consistent: a topic whose logs cannot open
		// is removed again rather than advertised.
		r.b.coord.DeleteTopic(ctx, name)
		return nil, err
	}
	r.b.log.Info("created topic", "topic", name, "partitions", len(assignment), "configs", configs)
	return r.get(name), nil
}

// addPartitions grows a topic to total partitions, placed by the
// controller. Controller only.
func (r *topicRegistry) addPartitions(ctx context.Context, name string, total int32) error {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	t := r.get(name)
	if t == nil {
		return coord.ErrUnknownTopic
	}
	m := t.meta.Clone()
	existing := make([][]int32, len(m.Partitions))
	for i, pm := range m.Partitions {
		existing[i] = pm.Replicas
	}
	rf := int16(1)
	if len(m.Partitions) > 0 {
		rf = int16(len(m.Partitions[0].Replicas))
	}
	assignment, err := r.b.ctrl.placeTopic(name, total-int32(len(m.Partitions)), rf, existing)
	if err != nil {
		return err
	}
	m.Partitions = append(m.Partitions, newPartitions(int32(len(m.Partitions)), assignment)...)
	stored, err := r.b.coord.UpdateTopic(ctx, m)
	if err != nil {
		return err
	}
	return r.installLocked(stored)
}

// setConfigs replaces a topic's config overrides.
func (r *topicRegistry) setConfigs(ctx context.Context, name string, configs map[string]string) error {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	t := r.get(name)
	if t == nil {
		return coord.ErrUnknownTopic
	}
	m := t.meta.Clone()
	m.Configs = configs
	stored, err := r.b.coord.UpdateTopic(ctx, m)
	if err != nil {
		return err
	}
	return r.installLocked(stored)
}

// remove deletes a topic from coord, then its logs from disk.
func (r *topicRegistry) remove(ctx context.Context, name string) error {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	t := r.get(name)
	if t == nil {
		return coord.ErrUnknownTopic
	}
	if err := r.b.coord.DeleteTopic(ctx, name); err != nil {
		return err
	}
	return r.dropLocked(t, true)
}

// closeAll stops following coord and closes every log cleanly.
func (r *topicRegistry) closeAll() error {
	if r.stopWatch != nil {
		r.stopWatch()
	}
	r.createMu.Lock()
	defer r.createMu.Unlock()
	var errs []error
	for _, p := range r.allPartitions() {
		if err := p.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tick runs time-driven log work: flush.ms and segment.ms rolls of quiet
// partitions.
func (r *topicRegistry) tick() {
	for _, p := range r.allPartitions() {
		p.Maintain()
	}
}

// isInternalTopic: Kafka hides these from Metadata requests for all topics
// unless asked by name, and marks them internal.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// coordBroker is a short name for a registered broker.
type coordBroker = coord.BrokerInfo
