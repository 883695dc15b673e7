package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"

	"github.com/strata-broker/strata/coord"
)

// topic is the broker's in-memory view of one topic: metadata from coord and
// the partitions this broker hosts. The registry rebuilds it on coord events,
// so request handlers never call coord on the hot path.
type topic struct {
	meta       coord.TopicMeta
	cfg        *topicConfig
	partitions []*partition
}

// topicRegistry owns the map of topics and the open partition logs.
type topicRegistry struct {
	b  *Broker
	mu sync.RWMutex
	// byName and byID index the same topics.
	byName map[string]*topic
	byID   map[[16]byte]*topic
	// createMu serialises topic creation/deletion/partition growth, so two
	// requests creating one topic cannot both open its logs.
	createMu sync.Mutex
}

func newTopicRegistry(b *Broker) *topicRegistry {
	r := &topicRegistry{b: b, byName: map[string]*topic{}, byID: map[[16]byte]*topic{}}
	b.metrics.reg.MustRegister(newPartitionCollector(b))
	return r
}

// load opens every topic's partitions at start-up.
func (r *topicRegistry) load(ctx context.Context) error {
	metas, err := r.b.coord.Topics(ctx)
	if err != nil {
		return err
	}
	for _, m := range metas {
		if err := r.install(m); err != nil {
			return err
		}
	}
	r.removeOrphanDirs()
	return nil
}

var partitionDirName = regexp.MustCompile(`^(.+)-(\d+)$`)

// removeOrphanDirs deletes partition folders that no topic owns: a crash
// between deleting a topic in coord and removing its folders leaves them.
// Coord is the source of truth; data it does not reference is unreachable.
func (r *topicRegistry) removeOrphanDirs() {
	entries, err := os.ReadDir(r.b.opts.DataDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		m := partitionDirName.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil {
			continue
		}
		idx, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		if t := r.get(m[1]); t != nil && idx < len(t.partitions) {
			continue
		}
		path := filepath.Join(r.b.opts.DataDir, e.Name())
		r.b.log.Warn("removing partition folder of a deleted topic", "dir", path)
		if err := os.RemoveAll(path); err != nil {
			r.b.log.Error("remove orphan partition folder", "dir", path, "err", err)
		}
	}
}

// install opens (or reconfigures) a topic from its metadata.
func (r *topicRegistry) install(m coord.TopicMeta) error {
	cfg := r.b.resolveTopicConfig(m.Configs)
	r.mu.RLock()
	old := r.byName[m.Name]
	r.mu.RUnlock()
	t := &topic{meta: m, cfg: cfg}
	if old != nil {
		t.partitions = append(t.partitions, old.partitions...)
		for _, p := range t.partitions {
			p.setConfig(cfg)
		}
	}
	for i := len(t.partitions); i < len(m.Partitions); i++ {
		pm := m.Partitions[i]
		p, err := openPartition(r.b.opts.DataDir, m.Name, pm.Partition, cfg, pm.LeaderEpoch)
		if err != nil {
			for _, q := range t.partitions[len(old.partitionsOrNil()):] {
				q.log.Close()
			}
			return err
		}
		t.partitions = append(t.partitions, p)
	}
	r.b.attachTiering(t)
	r.mu.Lock()
	r.byName[m.Name] = t
	r.byID[m.ID] = t
	r.mu.Unlock()
	return nil
}

func (t *topic) partitionsOrNil() []*partition {
	if t == nil {
		return nil
	}
	return t.partitions
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

func (r *topicRegistry) partition(name string, idx int32) (*topic, *partition) {
	t := r.get(name)
	if t == nil {
		return nil, nil
	}
	if idx < 0 || int(idx) >= len(t.partitions) {
		return t, nil
	}
	return t, t.partitions[idx]
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

var errTopicExists = coord.ErrTopicExists

// create stores a new topic in coord and opens its partitions here.
func (r *topicRegistry) create(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*topic, error) {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	if r.get(name) != nil {
		return nil, errTopicExists
	}
	m := coord.TopicMeta{Name: name, Configs: configs, Internal: isInternalTopic(name)}
	for i := int32(0); i < partitions; i++ {
		m.Partitions = append(m.Partitions, coord.PartitionMeta{
			Partition: i, Leader: r.b.opts.NodeID, LeaderEpoch: 0,
			Replicas: []int32{r.b.opts.NodeID}, ISR: []int32{r.b.opts.NodeID},
		})
	}
	stored, err := r.b.coord.CreateTopic(ctx, m)
	if err != nil {
		return nil, err
	}
	if err := r.install(stored); err != nil {
		// Keep coord and disk consistent: a topic whose logs cannot open
		// is removed again rather than advertised.
		r.b.coord.DeleteTopic(ctx, name)
		return nil, err
	}
	r.b.log.Info("created topic", "topic", name, "partitions", partitions, "configs", configs)
	return r.get(name), nil
}

// addPartitions grows a topic to total partitions.
func (r *topicRegistry) addPartitions(ctx context.Context, name string, total int32) error {
	r.createMu.Lock()
	defer r.createMu.Unlock()
	t := r.get(name)
	if t == nil {
		return coord.ErrUnknownTopic
	}
	m := t.meta.Clone()
	for i := int32(len(m.Partitions)); i < total; i++ {
		m.Partitions = append(m.Partitions, coord.PartitionMeta{
			Partition: i, Leader: r.b.opts.NodeID, Replicas: []int32{r.b.opts.NodeID}, ISR: []int32{r.b.opts.NodeID},
		})
	}
	stored, err := r.b.coord.UpdateTopic(ctx, m)
	if err != nil {
		return err
	}
	return r.install(stored)
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
	return r.install(stored)
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
	r.mu.Lock()
	delete(r.byName, name)
	delete(r.byID, t.meta.ID)
	r.mu.Unlock()
	var errs []error
	for _, p := range t.partitions {
		p.appendMu.Lock()
		if err := p.log.Delete(); err != nil {
			errs = append(errs, fmt.Errorf("delete %s-%d: %w", name, p.index, err))
		}
		p.appendMu.Unlock()
		p.wake()
		if tp := p.tier.Load(); tp != nil {
			if err := tp.DeleteAll(ctx); err != nil {
				errs = append(errs, fmt.Errorf("delete remote data of %s-%d: %w", name, p.index, err))
			}
		}
	}
	if r.b.tier != nil && t.cfg.remoteStorage {
		if err := r.b.tier.Store().Delete(ctx, topicConfigKey(name)); err != nil {
			errs = append(errs, fmt.Errorf("delete remote config of %s: %w", name, err))
		}
	}
	r.b.log.Info("deleted topic", "topic", name)
	return errors.Join(errs...)
}

func (r *topicRegistry) closeAll() error {
	var errs []error
	for _, t := range r.all() {
		for _, p := range t.partitions {
			p.appendMu.Lock()
			if err := p.log.Close(); err != nil {
				errs = append(errs, err)
			}
			p.appendMu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// tick runs time-driven log work: flush.ms and segment.ms rolls of quiet
// partitions.
func (r *topicRegistry) tick() {
	for _, t := range r.all() {
		for _, p := range t.partitions {
			p.appendMu.Lock()
			if err := p.log.FlushIfDue(); err != nil {
				r.b.log.Error("flush failed", "topic", p.topic, "partition", p.index, "err", err)
			}
			if _, err := p.log.MaybeRoll(); err != nil {
				r.b.log.Error("roll failed", "topic", p.topic, "partition", p.index, "err", err)
			}
			p.appendMu.Unlock()
		}
	}
}

// isInternalTopic: Kafka hides these from Metadata requests for all topics
// unless asked by name, and marks them internal.
func isInternalTopic(name string) bool {
	return name == "__consumer_offsets" || name == "__transaction_state"
}

// coordBroker is a short name for a registered broker.
type coordBroker = coord.BrokerInfo
