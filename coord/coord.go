// Package coord holds cluster metadata — topics, partitions, leaders and leader
// epochs, broker registrations, producer-id blocks — behind one interface.
//
// The first implementation (Embedded) is a single node that persists metadata as a
// JSON document under the data directory. The interface is shaped for the Consul
// implementation that follows: every topic carries a Version used for
// check-and-set updates, leaders carry epochs, and changes are announced through
// Watch so brokers keep an in-memory copy instead of calling coord on the
// produce/fetch hot path.
package coord

import (
	"context"
	"errors"
)

var (
	// ErrTopicExists is returned by CreateTopic for a name already in use.
	ErrTopicExists = errors.New("coord: topic already exists")
	// ErrUnknownTopic is returned for operations on a topic that does not exist.
	ErrUnknownTopic = errors.New("coord: unknown topic")
	// ErrConflict is returned by UpdateTopic when the stored Version differs
	// from the caller's: someone else changed the topic first (check-and-set).
	ErrConflict = errors.New("coord: concurrent update")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("coord: closed")
)

// PartitionMeta is one partition's placement and leadership.
type PartitionMeta struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
}

// TopicMeta is everything the cluster knows about one topic.
type TopicMeta struct {
	Name string `json:"name"`
	// ID is the topic's UUID (KIP-516), returned in Metadata v10+.
	ID         [16]byte          `json:"id"`
	Partitions []PartitionMeta   `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	// Version increases with every change; UpdateTopic succeeds only when the
	// caller's Version equals the stored one.
	Version uint64 `json:"version"`
}

// Clone returns a deep copy, so callers can change it without racing readers.
func (t TopicMeta) Clone() TopicMeta {
	c := t
	c.Partitions = make([]PartitionMeta, len(t.Partitions))
	for i, p := range t.Partitions {
		p.Replicas = append([]int32(nil), p.Replicas...)
		p.ISR = append([]int32(nil), p.ISR...)
		c.Partitions[i] = p
	}
	c.Configs = make(map[string]string, len(t.Configs))
	for k, v := range t.Configs {
		c.Configs[k] = v
	}
	return c
}

// BrokerInfo is a live broker's registration.
type BrokerInfo struct {
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
}

// EventKind says what changed.
type EventKind int

const (
	TopicCreated EventKind = iota + 1
	TopicUpdated
	TopicDeleted
	BrokersChanged
)

// Event announces one change. For TopicDeleted, Topic holds the last known state.
type Event struct {
	Kind  EventKind
	Topic TopicMeta
}

// Coordinator is the metadata store every broker talks to.
type Coordinator interface {
	// ClusterID is stable for the life of the cluster (its data).
	ClusterID() string
	// ControllerID is the node currently acting as controller.
	ControllerID() int32

	Topics(ctx context.Context) ([]TopicMeta, error)
	Topic(ctx context.Context, name string) (TopicMeta, error)
	// CreateTopic stores a new topic; the ID and Version are assigned here.
	CreateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error)
	// UpdateTopic replaces a topic if t.Version matches (check-and-set) and
	// returns the stored result with its new Version.
	UpdateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error)
	DeleteTopic(ctx context.Context, name string) error

	RegisterBroker(ctx context.Context, b BrokerInfo) error
	Brokers(ctx context.Context) ([]BrokerInfo, error)

	// AllocateProducerIDs reserves n consecutive producer ids and returns the
	// first. Ids are never handed out twice, across restarts.
	AllocateProducerIDs(ctx context.Context, n int64) (int64, error)

	// Watch registers fn to be called, in order, for every change after the
	// call. fn must not block for long. The returned func unregisters.
	Watch(fn func(Event)) (cancel func())

	Close() error
}
