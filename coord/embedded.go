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
)

// metaFileName is the embedded store's document, beside the partition folders.
// The name starts with a dot so it can never collide with a "<topic>-<partition>"
// folder (topic names cannot start with a dot and contain a dash-number suffix).
const metaFileName = ".strata-metadata.json"

// Embedded is the single-node Coordinator: state in memory, persisted to one
// JSON file under the data directory with write-temp, fsync, rename on every
// change, so a crash leaves either the old or the new document.
type Embedded struct {
	path string
	self BrokerInfo
	mu   struct {
		sync.Mutex
		doc      embeddedDoc
		brokers  map[int32]BrokerInfo
		watchers map[int]func(Event)
		nextW    int
		closed   bool
	}
	// notifyMu serialises watcher calls so events arrive in order.
	notifyMu sync.Mutex
}

type embeddedDoc struct {
	ClusterID      string               `json:"cluster_id"`
	Topics         map[string]TopicMeta `json:"topics"`
	NextProducerID int64                `json:"next_producer_id"`
}

var _ Coordinator = (*Embedded)(nil)

// OpenEmbedded loads (or creates) the metadata document in dataDir. nodeID is
// this broker, which is always the controller in single-node mode.
func OpenEmbedded(dataDir string, nodeID int32) (*Embedded, error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("coord: create data dir: %w", err)
	}
	e := &Embedded{path: filepath.Join(dataDir, metaFileName)}
	e.self.NodeID = nodeID
	e.mu.brokers = map[int32]BrokerInfo{}
	e.mu.watchers = map[int]func(Event){}
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
		if err := e.persistLocked(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("coord: read metadata: %w", err)
	}
	if e.mu.doc.Topics == nil {
		e.mu.doc.Topics = map[string]TopicMeta{}
	}
	return e, nil
}

func (e *Embedded) ClusterID() string   { return e.mu.doc.ClusterID }
func (e *Embedded) ControllerID() int32 { return e.self.NodeID }

func (e *Embedded) Topics(ctx context.Context) ([]TopicMeta, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.mu.closed {
		return nil, ErrClosed
	}
	out := make([]TopicMeta, 0, len(e.mu.doc.Topics))
	for _, t := range e.mu.doc.Topics {
		out = append(out, t.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
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
	if e.mu.closed {
		e.mu.Unlock()
		return TopicMeta{}, ErrClosed
	}
	if _, ok := e.mu.doc.Topics[t.Name]; ok {
		e.mu.Unlock()
		return TopicMeta{}, ErrTopicExists
	}
	t = t.Clone()
	rand.Read(t.ID[:])
	t.Version = 1
	e.mu.doc.Topics[t.Name] = t
	if err := e.persistLocked(); err != nil {
		delete(e.mu.doc.Topics, t.Name)
		e.mu.Unlock()
		return TopicMeta{}, err
	}
	e.mu.Unlock()
	e.notify(Event{Kind: TopicCreated, Topic: t.Clone()})
	return t.Clone(), nil
}

func (e *Embedded) UpdateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error) {
	e.mu.Lock()
	old, ok := e.mu.doc.Topics[t.Name]
	if !ok {
		e.mu.Unlock()
		return TopicMeta{}, ErrUnknownTopic
	}
	if old.Version != t.Version {
		e.mu.Unlock()
		return TopicMeta{}, ErrConflict
	}
	t = t.Clone()
	t.ID = old.ID
	t.Version = old.Version + 1
	e.mu.doc.Topics[t.Name] = t
	if err := e.persistLocked(); err != nil {
		e.mu.doc.Topics[t.Name] = old
		e.mu.Unlock()
		return TopicMeta{}, err
	}
	e.mu.Unlock()
	e.notify(Event{Kind: TopicUpdated, Topic: t.Clone()})
	return t.Clone(), nil
}

func (e *Embedded) DeleteTopic(ctx context.Context, name string) error {
	e.mu.Lock()
	old, ok := e.mu.doc.Topics[name]
	if !ok {
		e.mu.Unlock()
		return ErrUnknownTopic
	}
	delete(e.mu.doc.Topics, name)
	if err := e.persistLocked(); err != nil {
		e.mu.doc.Topics[name] = old
		e.mu.Unlock()
		return err
	}
	e.mu.Unlock()
	e.notify(Event{Kind: TopicDeleted, Topic: old})
	return nil
}

func (e *Embedded) RegisterBroker(ctx context.Context, b BrokerInfo) error {
	e.mu.Lock()
	e.mu.brokers[b.NodeID] = b
	e.mu.Unlock()
	e.notify(Event{Kind: BrokersChanged})
	return nil
}

func (e *Embedded) Brokers(ctx context.Context) ([]BrokerInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]BrokerInfo, 0, len(e.mu.brokers))
	for _, b := range e.mu.brokers {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out, nil
}

func (e *Embedded) AllocateProducerIDs(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, fmt.Errorf("coord: allocate %d producer ids", n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
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
	id := e.mu.nextW
	e.mu.nextW++
	e.mu.watchers[id] = fn
	return func() {
		e.mu.Lock()
		delete(e.mu.watchers, id)
		e.mu.Unlock()
	}
}

func (e *Embedded) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.mu.closed = true
	return nil
}

func (e *Embedded) notify(ev Event) {
	e.notifyMu.Lock()
	defer e.notifyMu.Unlock()
	e.mu.Lock()
	fns := make([]func(Event), 0, len(e.mu.watchers))
	ids := make([]int, 0, len(e.mu.watchers))
	for id := range e.mu.watchers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fns = append(fns, e.mu.watchers[id])
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(ev)
	}
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
