package txn

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Coordinator holds the transactional ids of the __transaction_state
// partitions this broker leads. It is safe for concurrent use; its one
// mutex is held only inside its methods, never across the caller's I/O.
type Coordinator struct {
	cfg Config

	mu struct {
		sync.Mutex
		partitions map[int32]*statePartition
	}
}

// statePartition is one led partition of __transaction_state (Kafka's
// TxnMetadataCacheEntry plus its loading flag).
type statePartition struct {
	epoch   int32 // the coordinator epoch: the partition's leader epoch
	loading bool
	loaded  map[string]*Metadata // records replayed so far, while loading
	txns    map[string]*entry
}

// entry is one transactional id: its committed metadata and the transition
// being written, if any (Kafka's pendingState).
type entry struct {
	meta    Metadata
	pending *Transition
	// failedFence: an epoch fence's abort could not be written; the epoch
	// is already bumped in memory and is not bumped again (Kafka's
	// hasFailedEpochFence).
	failedFence bool
}

// New returns a coordinator that leads no partition yet.
func New(cfg Config) (*Coordinator, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg}
	c.mu.partitions = map[int32]*statePartition{}
	return c, nil
}

// PartitionFor is the __transaction_state partition (and so the
// coordinator) of a transactional id.
func (c *Coordinator) PartitionFor(transactionalID string) int32 {
	return partitionFor(transactionalID, c.cfg.StatePartitions)
}

// OffsetsPartitionFor is the __consumer_offsets partition of a group, which
// AddOffsetsToTxn adds to the transaction.
func (c *Coordinator) OffsetsPartitionFor(groupID string) int32 {
	return partitionFor(groupID, c.cfg.OffsetsPartitions)
}

// BeginLoad starts leading partition at coordinatorEpoch (its leader
// epoch): requests for its ids get COORDINATOR_LOAD_IN_PROGRESS until
// FinishLoad. Whatever was loaded before for the partition is dropped, as
// Kafka's onElection does.
func (c *Coordinator) BeginLoad(partition, coordinatorEpoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.partitions[partition] = &statePartition{epoch: coordinatorEpoch, loading: true, loaded: map[string]*Metadata{}}
}

// LoadRecord replays one record of the partition being loaded, in offset
// order from the log start: the last record of an id wins, a tombstone
// removes it. A record that does not decode is skipped with its error
// (ErrBadRecord, or ErrUnknownKey which Kafka ignores too); the caller logs
// it and goes on.
func (c *Coordinator) LoadRecord(partition, coordinatorEpoch int32, key, value []byte) error {
	id, m, err := DecodeRecord(key, value)
	if err != nil {
		return err
	}
	if p := c.PartitionFor(id); p != partition {
		return fmt.Errorf("%w: %q belongs to partition %d, not %d", ErrBadRecord, id, p, partition)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.mu.partitions[partition]
	if sp == nil || !sp.loading || sp.epoch != coordinatorEpoch {
		return fmt.Errorf("txn: partition %d is not loading at epoch %d", partition, coordinatorEpoch)
	}
	if m == nil {
		delete(sp.loaded, id)
	} else {
		sp.loaded[id] = m
	}
	return nil
}

// FinishLoad makes the loaded ids of partition live and returns a marker
// job for every transaction left in PrepareCommit or PrepareAbort: its
// outcome was decided and written, but a crash stopped the markers. The
// broker writes them and then each job's completion (Kafka's
// loadTransactionsForTxnTopicPartition). Ongoing transactions resume, and
// time out as usual. Where Strata differs: start and update times later
// than now are taken as now.
func (c *Coordinator) FinishLoad(partition, coordinatorEpoch int32, now time.Time) ([]*MarkerJob, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.mu.partitions[partition]
	if sp == nil || !sp.loading || sp.epoch != coordinatorEpoch {
		return nil, fmt.Errorf("txn: partition %d is not loading at epoch %d", partition, coordinatorEpoch)
	}
	sp.txns = make(map[string]*entry, len(sp.loaded))
	ids := make([]string, 0, len(sp.loaded))
	nowMs := now.UnixMilli()
	for id, m := range sp.loaded {
		// Times from the future (a clock that jumped back, a damaged
		// record) would keep a transaction open, or an id alive, forever:
		// they count from now instead.
		m.StartTimeMs = min(m.StartTimeMs, nowMs)
		m.LastUpdateMs = min(m.LastUpdateMs, nowMs)
		sp.txns[id] = &entry{meta: *m}
		ids = append(ids, id)
	}
	sp.loaded, sp.loading = nil, false
	sort.Strings(ids)
	var jobs []*MarkerJob
	for _, id := range ids {
		e := sp.txns[id]
		if e.meta.State != PrepareCommit && e.meta.State != PrepareAbort {
			continue
		}
		job, err := c.prepareMarkers(sp, e, now)
		if err != nil {
			return jobs, err
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// Unload stops leading partition (Kafka's onResignation). With
// coordinatorEpoch >= 0 only that epoch's state goes; -1 drops any.
// Transitions in flight then complete with NOT_COORDINATOR.
func (c *Coordinator) Unload(partition, coordinatorEpoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sp := c.mu.partitions[partition]; sp != nil && (coordinatorEpoch < 0 || sp.epoch == coordinatorEpoch) {
		delete(c.mu.partitions, partition)
	}
}

// lookup finds the led, loaded partition of id. Caller holds mu.
func (c *Coordinator) lookup(id string) (*statePartition, *kerr.Error) {
	sp := c.mu.partitions[c.PartitionFor(id)]
	switch {
	case sp == nil:
		return nil, kerr.NotCoordinator
	case sp.loading:
		return nil, kerr.CoordinatorLoadInProgress
	}
	return sp, nil
}

// Describe answers DescribeTransactions for one id: TRANSACTIONAL_ID_NOT_FOUND
// when unknown (or expiring), NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS
// when this broker cannot say.
func (c *Coordinator) Describe(transactionalID string) (Metadata, *kerr.Error) {
	if transactionalID == "" {
		return Metadata{}, kerr.InvalidRequest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, kerrv := c.lookup(transactionalID)
	if kerrv != nil {
		return Metadata{}, kerrv
	}
	e := sp.txns[transactionalID]
	if e == nil || e.meta.State == Dead || (e.pending != nil && e.pending.Next.State == Dead) {
		return Metadata{}, kerr.TransactionalIDNotFound
	}
	return e.meta.clone(), nil
}

// ListFilter narrows ListTransactions: producer ids and states (empty means
// all), and DurationMs >= 0 keeps only transactions running longer than
// that (KIP-994).
type ListFilter struct {
	ProducerIDs []int64
	States      []State
	DurationMs  int64
}

// List answers ListTransactions over the loaded partitions, sorted by
// transactional id; COORDINATOR_LOAD_IN_PROGRESS while any is loading.
func (c *Coordinator) List(f ListFilter, now time.Time) ([]Metadata, *kerr.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pids := map[int64]bool{}
	for _, p := range f.ProducerIDs {
		pids[p] = true
	}
	states := map[State]bool{}
	for _, s := range f.States {
		states[s] = true
	}
	var out []Metadata
	for _, sp := range c.mu.partitions {
		if sp.loading {
			return nil, kerr.CoordinatorLoadInProgress
		}
		for _, e := range sp.txns {
			m := e.meta
			switch {
			case m.State == Dead:
			case len(pids) > 0 && !pids[m.ProducerID]:
			case len(states) > 0 && !states[m.State]:
			case f.DurationMs >= 0 && now.UnixMilli()-m.StartTimeMs <= f.DurationMs:
			default:
				out = append(out, m.clone())
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out, nil
}

// errInvariant marks a transition the state machine refuses because it
// would break Kafka's invariants (Kafka throws IllegalStateException). It
// means a bug or an impossible loaded state; the request gets
// UNKNOWN_SERVER_ERROR.
var errInvariant = errors.New("txn: invalid state transition")
