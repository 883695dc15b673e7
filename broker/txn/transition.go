package txn

import (
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Transition is a prepared state change of one transactional id (Kafka's
// TxnTransitMetadata): the record to append to its __transaction_state
// partition and the metadata it leads to. The id is pending until the
// caller reports the append's outcome with Complete; requests meanwhile
// get CONCURRENT_TRANSACTIONS.
type Transition struct {
	TransactionalID  string
	Partition        int32 // of __transaction_state
	CoordinatorEpoch int32
	Key, Value       []byte // Value is nil for a tombstone (id expiry)
	Next             Metadata

	kind  transitionKind
	entry *entry
	// fence: the abort of an epoch fence (InitProducerId on an ongoing
	// transaction, or a timeout); its failure sets failedFence.
	fence bool
	// concurrent: the client gets CONCURRENT_TRANSACTIONS once written
	// (InitProducerId had to abort an ongoing transaction first).
	concurrent bool
}

type transitionKind int

const (
	initProducerID transitionKind = iota
	addPartitions
	prepareEnd
	completeEnd
	expireID
)

// MarkerJob is a decided transaction whose markers must be written: a
// commit or abort marker for ProducerID at ProducerEpoch with
// CoordinatorEpoch in every partition of Partitions (Kafka's
// TransactionMarkerChannelManager does this with WriteTxnMarkers). Then
// the caller appends Complete's record and calls Coordinator.Complete
// with it. A partition that no longer exists may be skipped, as Kafka
// does.
type MarkerJob struct {
	TransactionalID  string
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
	Partitions       []TopicPartition
	Complete         *Transition
}

// Completion is the outcome of Complete.
type Completion struct {
	// Err is what the client gets; nil means success. For InitProducerId
	// the id and epoch to return are ProducerID and ProducerEpoch.
	Err           *kerr.Error
	ProducerID    int64
	ProducerEpoch int16
	// Markers is set once a PrepareCommit/PrepareAbort is written: the
	// markers to write next.
	Markers *MarkerJob
	// Retry is set when the completion record of a marker job failed with
	// a retriable error: the id stays pending; append the same transition
	// again and call Complete again.
	Retry bool
}

// prepare validates a transition from e's committed state to next (Kafka's
// prepareTransitionTo) and marks e pending. Caller holds mu.
func (c *Coordinator) prepare(sp *statePartition, e *entry, next Metadata, kind transitionKind) (*Transition, error) {
	cur := e.meta
	switch {
	case e.pending != nil:
		return nil, fmt.Errorf("%w: %q already pending %s", errInvariant, cur.TransactionalID, e.pending.Next.State)
	case next.ProducerID < 0:
		return nil, fmt.Errorf("%w: %q: producer id %d", errInvariant, cur.TransactionalID, next.ProducerID)
	case next.State != Dead && next.ProducerEpoch < 0:
		return nil, fmt.Errorf("%w: %q: producer epoch %d", errInvariant, cur.TransactionalID, next.ProducerEpoch)
	case !next.State.validPrevious(cur.State):
		return nil, fmt.Errorf("%w: %q: %s to %s", errInvariant, cur.TransactionalID, cur.State, next.State)
	}
	t := &Transition{
		TransactionalID:  cur.TransactionalID,
		Partition:        c.PartitionFor(cur.TransactionalID),
		CoordinatorEpoch: sp.epoch,
		Key:              EncodeKey(cur.TransactionalID),
		Next:             next,
		kind:             kind,
		entry:            e,
	}
	if next.State != Dead {
		t.Value = EncodeValue(next)
	}
	e.pending = t
	return t, nil
}

// writeErrorFor maps the error of appending to __transaction_state to what
// the coordinator's client gets (Kafka's appendTransactionToLog).
func writeErrorFor(err *kerr.Error) *kerr.Error {
	switch err {
	case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas, kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
		return kerr.CoordinatorNotAvailable
	case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
		return kerr.NotCoordinator
	case kerr.MessageTooLarge, kerr.RecordListTooLarge:
		return kerr.UnknownServerError
	}
	return err
}

// Complete applies t once its record's append finished: writeErr is nil
// on success, else the append's Kafka error. Only a successful append
// changes the state (Kafka's completeTransitionTo, with its consistency
// checks); a failed one clears the pending mark, except that a marker
// job's completion stays pending on a retriable error (Retry) because the
// markers are already out. If the coordinator lost or reloaded the
// partition meanwhile, the result is NOT_COORDINATOR and nothing changes.
func (c *Coordinator) Complete(t *Transition, writeErr *kerr.Error, now time.Time) Completion {
	c.mu.Lock()
	defer c.mu.Unlock()
	sp := c.mu.partitions[t.Partition]
	if sp == nil || sp.loading || sp.epoch != t.CoordinatorEpoch || sp.txns[t.TransactionalID] != t.entry || t.entry.pending != t {
		return Completion{Err: kerr.NotCoordinator}
	}
	e := t.entry
	if writeErr != nil {
		mapped := writeErrorFor(writeErr)
		if t.kind == completeEnd && (mapped == kerr.CoordinatorNotAvailable || mapped == kerr.NotEnoughReplicas) {
			return Completion{Err: mapped, Retry: true}
		}
		e.pending = nil
		if t.fence {
			e.failedFence = true
		}
		return Completion{Err: mapped}
	}
	e.pending = nil
	if err := checkTransition(e.meta, t.Next, t.kind); err != nil {
		return Completion{Err: kerr.UnknownServerError}
	}
	switch t.kind {
	case expireID:
		delete(sp.txns, t.TransactionalID)
		return Completion{}
	case completeEnd:
		// The fence (if any) is written for good.
		e.failedFence = false
	}
	e.meta = t.Next.clone()
	res := Completion{ProducerID: e.meta.ProducerID, ProducerEpoch: e.meta.ProducerEpoch}
	if t.kind == prepareEnd {
		job, err := c.prepareMarkers(sp, e, now)
		if err != nil {
			return Completion{Err: kerr.UnknownServerError}
		}
		res.Markers = job
		if t.concurrent {
			res.Err = kerr.ConcurrentTransactions
		}
	}
	return res
}

// checkTransition is Kafka's completeTransitionTo consistency check: the
// written metadata must follow from the committed one.
func checkTransition(cur, next Metadata, kind transitionKind) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %q %s → %s: %s", errInvariant, cur.TransactionalID, cur.State, next.State, why)
	}
	sameProducer := next.ProducerID == cur.ProducerID && next.ProducerEpoch == cur.ProducerEpoch
	switch next.State {
	case Empty:
		bump := next.ProducerEpoch == cur.ProducerEpoch+1 || (next.ProducerEpoch == 0 && next.ProducerID != cur.ProducerID)
		if (cur.ProducerEpoch != next.ProducerEpoch && !bump) || len(next.Partitions) > 0 || next.StartTimeMs != -1 {
			return bad("not an epoch bump")
		}
	case Ongoing:
		if !sameProducer || !subset(cur.Partitions, next.Partitions) || cur.TimeoutMs != next.TimeoutMs {
			return bad("partitions may only be added")
		}
	case PrepareCommit, PrepareAbort:
		if !sameProducer || !equalTPs(cur.Partitions, next.Partitions) || cur.TimeoutMs != next.TimeoutMs || cur.StartTimeMs != next.StartTimeMs {
			return bad("the transaction changed")
		}
	case CompleteCommit, CompleteAbort:
		if !sameProducer || cur.TimeoutMs != next.TimeoutMs || next.StartTimeMs == -1 {
			return bad("the transaction changed")
		}
	case Dead:
		if kind != expireID {
			return bad("only expiry removes an id")
		}
	default:
		return bad("never completed")
	}
	if next.LastUpdateMs < cur.LastUpdateMs && next.State != Dead {
		return bad("time went backwards")
	}
	return nil
}

// prepareMarkers turns a just-decided (PrepareCommit/PrepareAbort) entry
// into its marker job, preparing the completion so the id stays pending
// until the markers are written (Kafka's prepareComplete right after the
// PrepareX append). Caller holds mu.
func (c *Coordinator) prepareMarkers(sp *statePartition, e *entry, now time.Time) (*MarkerJob, error) {
	m := e.meta
	next := m.clone()
	next.State = CompleteCommit
	if m.State == PrepareAbort {
		next.State = CompleteAbort
	}
	next.Partitions = nil
	next.LastUpdateMs = max(now.UnixMilli(), m.LastUpdateMs)
	next.LastProducerEpoch = m.ProducerEpoch
	t, err := c.prepare(sp, e, next, completeEnd)
	if err != nil {
		return nil, err
	}
	return &MarkerJob{
		TransactionalID:  m.TransactionalID,
		ProducerID:       m.ProducerID,
		ProducerEpoch:    m.ProducerEpoch,
		CoordinatorEpoch: sp.epoch,
		Commit:           m.State == PrepareCommit,
		Partitions:       append([]TopicPartition(nil), m.Partitions...),
		Complete:         t,
	}, nil
}

// epochExhausted: an epoch this high gets a new producer id rather than a
// bump, so that a fence can always bump once more (Kafka's
// isEpochExhausted).
func epochExhausted(epoch int16) bool { return epoch >= math.MaxInt16-1 }
