package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// metaFileName is the embedded store's document, beside the partition folders.
// The name starts with a dot so it can never collide with a "<topic>-<partition>"
// folder (topic names cannot start with a dot and contain a dash-number suffix).
const metaFileName = ".strata-metadata.json"

// Embedded is the single-node Coordinator: state in memory, persisted to one
// JSON file under the data directory with write-temp, fsync, rename on every
// change, so a crash leaves either the old or the new document. Its broker is
// always the controller, and its session never lapses.
type Embedded struct {
	path  string
	self  BrokerInfo
	done  chan struct{} // closed by Close: ends the controller term
	watch watchers
	mu    struct {
		sync.Mutex
		doc     embeddedDoc
		brokers map[int32]BrokerInfo
		closed  bool
	}
}

type embeddedDoc struct {
	ClusterID       string               `json:"cluster_id"`
	Topics          map[string]TopicMeta `json:"topics"`
	NextProducerID  int64                `json:"next_producer_id"`
	ControllerEpoch int64                `json:"controller_epoch"`
	BrokerEpoch     int64                `json:"broker_epoch"`
}

var _ Coordinator = (*Embedded)(nil)

// OpenEmbedded loads (or creates) the metadata document in dataDir. nodeID is
// this broker, which is always the controller in single-node mode; every open
// starts a new controller term (the epoch is persisted and bumped).
func OpenEmbedded(dataDir string, nodeID int32) (*Embedded, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("coord: create data dir: %w", err)
	}
	e := &Embedded{path: filepath.Join(dataDir, metaFileName), done: make(chan struct{})}
	e.self.NodeID = nodeID
	e.mu.brokers = map[int32]BrokerInfo{}
	b, err := os.ReadFile(e.path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &e.mu.doc); err != nil {
			return nil, fmt.Errorf("coord: %s is not valid metadata: %w", e.path, err)
		}
	case os.IsNotExist(err):
		var id [16]byte
		rand.Read(id[:])
		e.mu.doc.ClusterID = hex.EncodeToString(id[:])[:22]
		e.mu.doc.NextProducerID = 1000
	default:
		return nil, fmt.Errorf("coord: read metadata: %w", err)
	}
	if e.mu.doc.Topics == nil {
		e.mu.doc.Topics = map[string]TopicMeta{}
	}
	e.mu.doc.ControllerEpoch++
	if err := e.persistLocked(); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *Embedded) ClusterID() string { return e.mu.doc.ClusterID }

func (e *Embedded) Controller() (int32, int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.self.NodeID, e.mu.doc.ControllerEpoch
}

func (e *Embedded) Topics(ctx context.Context) ([]TopicMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	return e.topicsLocked(), nil
}

func (e *Embedded) topicsLocked() []TopicMeta {
	out := make([]TopicMeta, 0, len(e.mu.doc.Topics))
	for _, t := range e.mu.doc.Topics {
		out = append(out, t.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (e *Embedded) Topic(ctx context.Context, name string) (TopicMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.mu.doc.Topics[name]
	if !ok {
		return TopicMeta{}, ErrUnknownTopic
	}
	return t.Clone(), nil
}

func (e *Embedded) CreateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return TopicMeta{}, ErrClosed
	}
	if _, ok := e.mu.doc.Topics[t.Name]; ok {
		return TopicMeta{}, ErrTopicExists
	}
	t = t.Clone()
	rand.Read(t.ID[:])
	t.Version = 1
	e.mu.doc.Topics[t.Name] = t
	if err := e.persistLocked(); err != nil {
		delete(e.mu.doc.Topics, t.Name)
		return TopicMeta{}, err
	}
	e.watch.send(Event{Kind: TopicCreated, Topic: t.Clone()})
	return t.Clone(), nil
}

func (e *Embedded) UpdateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return TopicMeta{}, ErrClosed
	}
	old, ok := e.mu.doc.Topics[t.Name]
	if !ok {
		return TopicMeta{}, ErrUnknownTopic
	}
	if old.Version != t.Version {
		return TopicMeta{}, ErrConflict
	}
	next := t.Clone()
	next.ID, next.Internal = old.ID, old.Internal
	next.Version = old.Version + 1
	// Existing partitions keep their stored state; only new ones are taken.
	parts := old.Clone().Partitions
	for i := len(parts); i < len(next.Partitions); i++ {
		parts = append(parts, next.Partitions[i].Clone())
	}
	next.Partitions = parts
	e.mu.doc.Topics[t.Name] = next
	if err := e.persistLocked(); err != nil {
		e.mu.doc.Topics[t.Name] = old
		return TopicMeta{}, err
	}
	e.watch.send(Event{Kind: TopicUpdated, Topic: next.Clone()})
	return next.Clone(), nil
}

func (e *Embedded) UpdatePartition(ctx context.Context, topic string, p PartitionMeta, by Writer) (PartitionMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return PartitionMeta{}, ErrClosed
	}
	old, ok := e.mu.doc.Topics[topic]
	if !ok || p.Partition < 0 || int(p.Partition) >= len(old.Partitions) {
		return PartitionMeta{}, ErrUnknownTopic
	}
	stored := old.Partitions[p.Partition]
	if stored.PartitionEpoch != p.PartitionEpoch {
		return stored.Clone(), ErrConflict
	}
	if by == AsLeader && (stored.Leader != e.self.NodeID || stored.LeaderEpoch != p.LeaderEpoch) {
		return stored.Clone(), ErrFenced
	}
	next := old.Clone()
	np := p.Clone()
	np.PartitionEpoch = stored.PartitionEpoch + 1
	next.Partitions[p.Partition] = np
	e.mu.doc.Topics[topic] = next
	if err := e.persistLocked(); err != nil {
		e.mu.doc.Topics[topic] = old
		return stored.Clone(), err
	}
	e.watch.send(Event{Kind: TopicUpdated, Topic: next.Clone()})
	return np.Clone(), nil
}

func (e *Embedded) DeleteTopic(ctx context.Context, name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return ErrClosed
	}
	old, ok := e.mu.doc.Topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	delete(e.mu.doc.Topics, name)
	if err := e.persistLocked(); err != nil {
		e.mu.doc.Topics[name] = old
		return err
	}
	e.watch.send(Event{Kind: TopicDeleted, Topic: old})
	return nil
}

func (e *Embedded) RegisterBroker(ctx context.Context, b BrokerInfo) (BrokerInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return BrokerInfo{}, ErrClosed
	}
	e.mu.doc.BrokerEpoch++
	if err := e.persistLocked(); err != nil {
		e.mu.doc.BrokerEpoch--
		return BrokerInfo{}, err
	}
	b.Epoch = e.mu.doc.BrokerEpoch
	e.mu.brokers[b.NodeID] = b
	if b.NodeID == e.self.NodeID {
		e.self = b
	}
	e.watch.send(Event{Kind: BrokersChanged, Brokers: e.brokersLocked()})
	return b, nil
}

func (e *Embedded) Brokers(ctx context.Context) ([]BrokerInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.brokersLocked(), nil
}

func (e *Embedded) brokersLocked() []BrokerInfo {
	out := make([]BrokerInfo, 0, len(e.mu.brokers))
	for _, b := range e.mu.brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

func (e *Embedded) Self() BrokerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.self
}

func (e *Embedded) SetShuttingDown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.mu.brokers[e.self.NodeID]
	if !ok {
		return nil
	}
	b.ShuttingDown = true
	e.mu.brokers[b.NodeID] = b
	e.self = b
	e.watch.send(Event{Kind: BrokersChanged, Brokers: e.brokersLocked()})
	return nil
}

// farFuture is the embedded session's validity: a single node has no one
// to hand leadership to, so its lease never runs out.
var farFuture = time.Now().Add(100 * 365 * 24 * time.Hour)

func (e *Embedded) SessionValidUntil() time.Time { return farFuture }

func (e *Embedded) Campaign(ctx context.Context) (Term, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return Term{}, ErrClosed
	}
	return Term{Epoch: e.mu.doc.ControllerEpoch, Done: e.done}, nil
}

func (e *Embedded) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("coord: allocate %d producer ids", n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return 0, ErrClosed
	}
	first := e.mu.doc.NextProducerID
	e.mu.doc.NextProducerID += n
	if err := e.persistLocked(); err != nil {
		e.mu.doc.NextProducerID = first
		return 0, err
	}
	return first, nil
}

func (e *Embedded) Watch(fn func(Event)) func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	initial := []Event{
		{Kind: BrokersChanged, Brokers: e.brokersLocked()},
		{Kind: ControllerChanged, Controller: e.self.NodeID, ControllerEpoch: e.mu.doc.ControllerEpoch},
	}
	for _, t := range e.topicsLocked() {
		initial = append(initial, Event{Kind: TopicCreated, Topic: t})
	}
	return e.watch.add(fn, initial)
}

func (e *Embedded) Close() error {
	e.mu.Lock()
	if e.mu.closed {
		e.mu.Unlock()
		return nil
	}
	e.mu.closed = true
	close(e.done)
	e.mu.Unlock()
	e.watch.closeAll()
	return nil
}

// persistLocked writes the document atomically: temp file, fsync, rename,
// fsync of the directory so the rename itself survives a power cut.
func (e *Embedded) persistLocked() error {
	b, err := json.MarshalIndent(&e.mu.doc, "", "  ")
	if err != nil {
		return fmt.Errorf("coord: encode metadata: %w", err)
	}
	tmp := e.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("coord: write metadata: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("coord: write metadata: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("coord: sync metadata: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("coord: write metadata: %w", err)
	}
	if err := os.Rename(tmp, e.path); err != nil {
		return fmt.Errorf("coord: replace metadata: %w", err)
	}
	if d, err := os.Open(filepath.Dir(e.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
