// Package coord holds cluster metadata — topics, partitions, leaders and their
// epochs, ISRs, broker registrations, the controller role, producer-id blocks —
// behind one interface with two implementations:
//
//   - Embedded: a single node; state persisted as one JSON document under the
//     data directory. The broker is always the controller.
//   - Consul (consul.go): a cluster; brokers register with Consul sessions bound
//     to a TTL check they keep passing, the controller is the holder of a Consul
//     lock, and every write is a Consul transaction that checks the writer still
//     holds what entitles it to write (the controller lock, or its own broker
//     registration) plus check-and-set on the key it changes.
//
// Brokers keep an in-memory copy fed by Watch and never call coord on the
// produce/fetch hot path: reads that the request path needs (Brokers,
// Controller, SessionValidUntil) answer from that cached state.
//
// Who writes what (DESIGN.md): the controller creates, grows, reconfigures and
// deletes topics, places replicas and elects leaders; a partition's leader
// changes its ISR; followers only fetch. Epochs fence stale writers: the
// controller epoch a deposed controller, leader epochs a deposed leader,
// partition epochs a stale ISR write.
package coord

import (
	"context"
	"errors"
	"time"
)

var (
	// ErrTopicExists is returned by CreateTopic for a name already in use.
	ErrTopicExists = errors.New("coord: topic already exists")
	// ErrUnknownTopic is returned for operations on a topic that does not exist.
	ErrUnknownTopic = errors.New("coord: unknown topic")
	// ErrConflict is returned by a check-and-set write whose expected version
	// (TopicMeta.Version, PartitionMeta.PartitionEpoch) differs from the stored
	// one: someone else changed it first. The caller reloads and decides again;
	// it never retries the same write blindly.
	ErrConflict = errors.New("coord: concurrent update")
	// ErrNotController is returned by a controller-only write when this
	// coordinator does not hold the controller role (never had it, or lost it:
	// a deposed controller's write fails and lands nothing).
	ErrNotController = errors.New("coord: not the controller")
	// ErrFenced is returned by a leader's partition write when the writer is
	// not the stored leader at the stored leader epoch, or its broker session
	// is gone.
	ErrFenced = errors.New("coord: fenced")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("coord: closed")
)

// PartitionMeta is one partition's placement and leadership.
type PartitionMeta struct {
	Partition int32 `json:"partition"`
	// Leader is the leader's node id, -1 while the partition is offline (no
	// live ISR member to elect).
	Leader      int32 `json:"leader"`
	LeaderEpoch int32 `json:"leader_epoch"`
	// PartitionEpoch increases with every change of this partition (leader,
	// ISR, replicas). UpdatePartition is check-and-set on it.
	PartitionEpoch int32   `json:"partition_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
}

// Clone returns a deep copy.
func (p PartitionMeta) Clone() PartitionMeta {
	p.Replicas = append([]int32(nil), p.Replicas...)
	p.ISR = append([]int32(nil), p.ISR...)
	return p
}

// TopicMeta is everything the cluster knows about one topic.
type TopicMeta struct {
	Name string `json:"name"`
	// ID is the topic's UUID (KIP-516), returned in Metadata v10+; assigned by
	// CreateTopic, unique cluster-wide.
	ID         [16]byte          `json:"id"`
	Partitions []PartitionMeta   `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	// Version increases with every change of the topic itself (configs,
	// partition count); UpdateTopic succeeds only when the caller's Version
	// equals the stored one. Changes to one partition's state (UpdatePartition)
	// move that partition's PartitionEpoch, not Version.
	Version uint64 `json:"version"`
}

// Clone returns a deep copy, so callers can change it without racing readers.
func (t TopicMeta) Clone() TopicMeta {
	c := t
	c.Partitions = make([]PartitionMeta, len(t.Partitions))
	for i, p := range t.Partitions {
		c.Partitions[i] = p.Clone()
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
	// Incarnation is random per process start. A broker that comes back with
	// another incarnation (restart, wiped disk) is a new member: it is in no
	// ISR until it has caught up (KIP-903's case).
	Incarnation string `json:"incarnation,omitempty"`
	// Epoch is the broker epoch (KIP-380, KIP-903), assigned by coord at
	// registration: strictly greater than any earlier registration of the
	// same node id. Followers send it in replica fetches (ReplicaState).
	Epoch int64 `json:"epoch"`
	// ShuttingDown is set by a broker in controlled shutdown (SIGTERM): the
	// controller moves its leaderships to other ISR members.
	ShuttingDown bool `json:"shutting_down,omitempty"`
}

// Writer says on whose authority UpdatePartition writes.
type Writer int

const (
	// AsController: leader elections, ISR removal of dead brokers, replica
	// reassignment. Requires the controller role.
	AsController Writer = iota + 1
	// AsLeader: a leader shrinking or expanding its partition's ISR. Requires
	// that the stored leader is this broker at the caller's LeaderEpoch, and a
	// live broker session.
	AsLeader
)

// Term is one tenure of the controller role.
type Term struct {
	// Epoch is the controller epoch: strictly greater than every earlier
	// term's, cluster-wide.
	Epoch int64
	// Done is closed when the role is lost (session expired, lock taken over,
	// coordinator closed). Writes after that fail with ErrNotController.
	Done <-chan struct{}
}

// EventKind says what changed.
type EventKind int

const (
	TopicCreated EventKind = iota + 1
	// TopicUpdated: the topic's configs or partition count changed, or any of
	// its partitions' state (leader, ISR, replicas, epochs).
	TopicUpdated
	TopicDeleted
	// BrokersChanged: a broker registered, went away, re-registered (new
	// epoch) or asked for controlled shutdown. Event.Brokers is the live set.
	BrokersChanged
	// ControllerChanged: Event.Controller / Event.ControllerEpoch.
	ControllerChanged
)

// Event announces one change. For TopicCreated and TopicUpdated, Topic is
// the whole topic as stored now, all partitions included; for TopicDeleted
// the last known state.
type Event struct {
	Kind            EventKind
	Topic           TopicMeta
	Brokers         []BrokerInfo
	Controller      int32
	ControllerEpoch int64
}

// Coordinator is the metadata store every broker talks to.
type Coordinator interface {
	// ClusterID is stable for the life of the cluster (its data). In Consul
	// it is created by the first broker to hold the controller lock.
	ClusterID() string
	// Controller is the current controller's node id and epoch as last seen
	// (cached), or (-1, 0) while there is none.
	Controller() (nodeID int32, epoch int64)

	// Topics and Topic read the cached state (Consul: as of the last
	// blocking query).
	Topics(ctx context.Context) ([]TopicMeta, error)
	Topic(ctx context.Context, name string) (TopicMeta, error)

	// CreateTopic stores a new topic with its partitions; the ID and Version
	// are assigned here. Controller only.
	CreateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error)
	// UpdateTopic replaces a topic's configs and appends partitions beyond
	// the stored count, if t.Version matches (check-and-set), and returns
	// the stored result with its new Version. The state of existing
	// partitions in t is ignored (UpdatePartition changes it). Controller
	// only.
	UpdateTopic(ctx context.Context, t TopicMeta) (TopicMeta, error)
	// DeleteTopic removes a topic and all its partitions. Controller only.
	DeleteTopic(ctx context.Context, name string) error
	// UpdatePartition replaces one partition's state if the stored
	// PartitionEpoch equals p.PartitionEpoch, storing it with PartitionEpoch+1,
	// and returns what is stored after the call (also on ErrConflict or
	// ErrFenced, so the caller can decide again without another read).
	UpdatePartition(ctx context.Context, topic string, p PartitionMeta, by Writer) (PartitionMeta, error)

	// RegisterBroker makes this broker live in the cluster and returns its
	// registration with Epoch assigned. In Consul the registration is bound
	// to a session that lapses within broker.session.timeout.ms if the
	// process dies or stops; a lapsed session is re-established (new epoch)
	// while the coordinator is open.
	RegisterBroker(ctx context.Context, b BrokerInfo) (BrokerInfo, error)
	// Brokers is the cached live set, sorted by node id.
	Brokers(ctx context.Context) ([]BrokerInfo, error)
	// Self is this broker's current registration (zero before RegisterBroker).
	Self() BrokerInfo
	// SetShuttingDown marks this broker's registration for controlled
	// shutdown.
	SetShuttingDown(ctx context.Context) error
	// SessionValidUntil is a time before which this broker's session is
	// certainly still valid (the last successful renewal's start plus the
	// session timeout). A leader stops acknowledging writes after it: past it,
	// the controller may already have elected another leader. Cheap (the
	// produce path calls it). Embedded: far in the future.
	SessionValidUntil() time.Time

	// Campaign blocks until this broker holds the controller role, or ctx
	// ends. Calling it again while a term is live returns that term.
	Campaign(ctx context.Context) (Term, error)

	// AllocateProducerIDs reserves n consecutive producer ids and returns the
	// first. Ids are never handed out twice, cluster-wide, across restarts.
	AllocateProducerIDs(ctx context.Context, n int64) (int64, error)

	// Watch registers fn. fn is first called with the current state (one
	// BrokersChanged, one ControllerChanged, then one TopicCreated per topic
	// in name order), then for every change, in order, from one goroutine
	// per watcher (never from the caller of a write), so fn may call coord
	// reads. fn must not block for long. The returned func unregisters and
	// waits for a call in progress to return.
	Watch(fn func(Event)) (cancel func())

	Close() error
}
