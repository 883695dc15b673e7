package txn

import (
	"math"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// InitProducerIDRequest is InitProducerId with a transactional id.
// ProducerID and ProducerEpoch are KIP-360's (v3+): the id and epoch the
// producer has, or both -1. (Without a transactional id the broker hands
// out an idempotent producer id itself; the coordinator is not involved.)
type InitProducerIDRequest struct {
	TransactionalID string
	TimeoutMs       int32
	ProducerID      int64
	ProducerEpoch   int16
}

// InitProducerID starts (or restarts) a transactional producer (Kafka's
// handleInitProducerId): a new id gets producer id newID() at epoch 0; a
// known id gets its epoch bumped, which fences older instances, or a new
// producer id once the epoch is exhausted. A producer still inside a
// transaction is fenced: the epoch is bumped and the transaction aborted
// first, and this request gets CONCURRENT_TRANSACTIONS once the abort is
// written (the client retries and then gets the bumped epoch).
//
// newID allocates a producer id; it is called without the coordinator's
// lock held and only when one is needed. The result either has Err set
// (answer it) or Write: append Write's record, then Complete gives the
// answer (the producer id and epoch, or an error).
func (c *Coordinator) InitProducerID(req InitProducerIDRequest, now time.Time, newID func() (int64, error)) (*kerr.Error, *Transition) {
	switch {
	case req.TransactionalID == "":
		return kerr.InvalidRequest, nil
	case (req.ProducerID < 0) != (req.ProducerEpoch < 0):
		// Kafka's KafkaApis: id and epoch come together or not at all.
		return kerr.InvalidRequest, nil
	case req.TimeoutMs <= 0 || int64(req.TimeoutMs) > c.cfg.MaxTimeout.Milliseconds():
		return kerr.InvalidTransactionTimeout, nil
	}
	fresh := int64(-1)
	for {
		err, t, needID := c.initProducerID(req, now, fresh)
		if !needID {
			return err, t
		}
		id, ierr := newID()
		if ierr != nil || id < 0 {
			return kerr.CoordinatorNotAvailable, nil
		}
		fresh = id
	}
}

// initProducerID decides under the lock; needID asks the caller for a
// producer id (fresh) and to come back.
func (c *Coordinator) initProducerID(req InitProducerIDRequest, now time.Time, fresh int64) (*kerr.Error, *Transition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, kerrv := c.lookup(req.TransactionalID)
	if kerrv != nil {
		return kerrv, nil, false
	}
	e := sp.txns[req.TransactionalID]
	if e == nil {
		if fresh < 0 {
			return nil, nil, true
		}
		e = &entry{meta: Metadata{
			TransactionalID: req.TransactionalID, ProducerID: fresh, PrevProducerID: -1,
			ProducerEpoch: -1, LastProducerEpoch: -1, TimeoutMs: req.TimeoutMs, State: Empty,
			StartTimeMs: -1, LastUpdateMs: now.UnixMilli(),
		}}
		sp.txns[req.TransactionalID] = e
		fresh = -1 // used
	}
	m := &e.meta
	expected := req.ProducerID >= 0
	// KIP-360: a producer that names its id may go on only if it is the
	// current one, the metadata is brand new, or it is the id before a
	// rotation whose answer it missed.
	validID := m.ProducerEpoch < 0 || req.ProducerID == m.ProducerID ||
		(req.ProducerID == m.PrevProducerID && epochExhausted(req.ProducerEpoch))
	switch {
	case e.pending != nil:
		return kerr.ConcurrentTransactions, nil, false
	case expected && !validID:
		return kerr.ProducerFenced, nil, false
	}
	nowMs := max(now.UnixMilli(), m.LastUpdateMs)
	switch m.State {
	case PrepareCommit, PrepareAbort:
		return kerr.ConcurrentTransactions, nil, false
	case Ongoing:
		t, err := c.fence(sp, e, nowMs)
		if err != nil {
			return kerr.UnknownServerError, nil, false
		}
		t.concurrent = true
		return nil, t, false
	}
	next := Metadata{
		TransactionalID: m.TransactionalID, ProducerID: m.ProducerID, PrevProducerID: m.PrevProducerID,
		TimeoutMs: req.TimeoutMs, State: Empty, StartTimeMs: -1, LastUpdateMs: nowMs,
	}
	if epochExhausted(m.ProducerEpoch) && (!expected || req.ProducerEpoch == m.ProducerEpoch) {
		// Rotation: a new producer id at epoch 0.
		if fresh < 0 {
			return nil, nil, true
		}
		next.ProducerID, next.PrevProducerID, next.ProducerEpoch = fresh, m.ProducerID, 0
		next.LastProducerEpoch = -1
		if expected {
			next.LastProducerEpoch = m.ProducerEpoch
		}
	} else {
		// Kafka's prepareIncrementProducerEpoch.
		switch {
		case !expected:
			next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, -1
		case m.ProducerEpoch < 0 || req.ProducerEpoch == m.ProducerEpoch:
			// Going on after an error, and nobody else initialised since.
			next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch+1, m.ProducerEpoch
		case req.ProducerEpoch == m.LastProducerEpoch:
			// A retry of a bump that succeeded: same answer.
			next.ProducerEpoch, next.LastProducerEpoch = m.ProducerEpoch, m.LastProducerEpoch
		default:
			return kerr.ProducerFenced, nil, false
		}
		if next.ProducerEpoch > math.MaxInt16-1 {
			// Unreachable (exhausted epochs rotate), but never hand out the
			// epoch kept for fencing.
			return kerr.ProducerFenced, nil, false
		}
	}
	t, err := c.prepare(sp, e, next, initProducerID)
	if err != nil {
		return kerr.UnknownServerError, nil, false
	}
	return nil, t, false
}

// fence bumps the epoch of e's ongoing transaction (once, even if an
// earlier fence failed to be written) and prepares its abort (Kafka's
// prepareFenceProducerEpoch followed by endTransaction(ABORT) from the
// coordinator itself). Like Kafka, the committed metadata takes the new
// epoch at once: requests of the fenced producer fail from now on, and the
// epoch reaches no client before the abort is written. Caller holds mu.
func (c *Coordinator) fence(sp *statePartition, e *entry, nowMs int64) (*Transition, error) {
	m := &e.meta
	if m.ProducerEpoch == math.MaxInt16 {
		return nil, errInvariant
	}
	if !e.failedFence {
		m.ProducerEpoch++
	}
	m.LastProducerEpoch = -1
	next := m.clone()
	next.State = PrepareAbort
	next.LastUpdateMs = nowMs
	t, err := c.prepare(sp, e, next, prepareEnd)
	if err != nil {
		return nil, err
	}
	t.fence = true
	return t, nil
}

// AddPartitionsRequest adds partitions to a producer's transaction.
type AddPartitionsRequest struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Partitions      []TopicPartition
}

// AddPartitions is AddPartitionsToTxn (v0–v3, and v4 without verify_only),
// Kafka's handleAddPartitionsToTransaction: the first partition starts the
// transaction (Ongoing, start time now). It returns an error to answer, or
// a Transition to write and Complete; neither when the partitions are
// already in the transaction (answer success at once). The handler checks
// that the partitions exist first (UNKNOWN_TOPIC_OR_PARTITION, the others
// OPERATION_NOT_ATTEMPTED).
func (c *Coordinator) AddPartitions(req AddPartitionsRequest, now time.Time) (*kerr.Error, *Transition) {
	if req.TransactionalID == "" {
		return kerr.InvalidRequest, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, e, kerrv := c.checkProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch)
	if kerrv != nil {
		return kerrv, nil
	}
	m := e.meta
	switch {
	case e.pending != nil, m.State == PrepareCommit, m.State == PrepareAbort:
		return kerr.ConcurrentTransactions, nil
	case m.State == Ongoing && subset(req.Partitions, m.Partitions):
		return nil, nil
	}
	nowMs := max(now.UnixMilli(), m.LastUpdateMs)
	next := m.clone()
	next.State = Ongoing
	next.Partitions = withPartitions(m.Partitions, req.Partitions)
	if m.State == Empty || m.State == CompleteCommit || m.State == CompleteAbort {
		next.StartTimeMs = nowMs
	}
	next.LastUpdateMs = nowMs
	t, err := c.prepare(sp, e, next, addPartitions)
	if err != nil {
		return kerr.UnknownServerError, nil
	}
	return nil, t
}

// AddOffsets is AddOffsetsToTxn: the group's partition of
// __consumer_offsets joins the transaction, so the markers also commit or
// abort the offsets TxnOffsetCommit wrote there.
func (c *Coordinator) AddOffsets(transactionalID string, producerID int64, producerEpoch int16, groupID string, now time.Time) (*kerr.Error, *Transition) {
	return c.AddPartitions(AddPartitionsRequest{
		TransactionalID: transactionalID, ProducerID: producerID, ProducerEpoch: producerEpoch,
		Partitions: []TopicPartition{{Topic: OffsetsTopic, Partition: c.OffsetsPartitionFor(groupID)}},
	}, now)
}

// VerifyPartitions is AddPartitionsToTxn v4 with verify_only, which a
// partition leader sends before appending a transactional batch (KIP-890
// part 1): a partition not in the producer's transaction gets
// TRANSACTION_ABORTABLE, so a hanging transaction cannot start with a late
// write. Errors about the producer apply to every partition. Nothing is
// written; pending transitions are not waited for (Kafka's
// handleVerifyPartitionsInTransaction: the append re-checks the epoch).
func (c *Coordinator) VerifyPartitions(transactionalID string, producerID int64, producerEpoch int16, partitions []TopicPartition) map[TopicPartition]*kerr.Error {
	all := func(err *kerr.Error) map[TopicPartition]*kerr.Error {
		out := make(map[TopicPartition]*kerr.Error, len(partitions))
		for _, tp := range partitions {
			out[tp] = err
		}
		return out
	}
	if transactionalID == "" {
		return all(kerr.InvalidRequest)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, e, kerrv := c.checkProducer(transactionalID, producerID, producerEpoch)
	if kerrv != nil {
		return all(kerrv)
	}
	if e.meta.State == PrepareCommit || e.meta.State == PrepareAbort {
		return all(kerr.ConcurrentTransactions)
	}
	out := make(map[TopicPartition]*kerr.Error, len(partitions))
	for _, tp := range partitions {
		if e.meta.has(tp) {
			out[tp] = nil
		} else {
			out[tp] = kerr.TransactionAbortable
		}
	}
	return out
}

// checkProducer finds id's entry and checks the producer's id and epoch:
// INVALID_PRODUCER_ID_MAPPING for an unknown id or another producer id,
// PRODUCER_FENCED for another epoch (a handler answers
// INVALID_PRODUCER_EPOCH instead to clients too old for it: InitProducerId
// before v4, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn before v2).
// Caller holds mu.
func (c *Coordinator) checkProducer(id string, producerID int64, producerEpoch int16) (*statePartition, *entry, *kerr.Error) {
	sp, kerrv := c.lookup(id)
	if kerrv != nil {
		return nil, nil, kerrv
	}
	e := sp.txns[id]
	switch {
	case e == nil || e.meta.ProducerID != producerID:
		return nil, nil, kerr.InvalidProducerIDMapping
	case e.meta.ProducerEpoch != producerEpoch:
		return nil, nil, kerr.ProducerFenced
	}
	return sp, e, nil
}

// EndTxnRequest commits or aborts a producer's transaction.
type EndTxnRequest struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
	Commit          bool
}

// EndTxn is EndTxn from a client (Kafka's handleEndTransaction, transaction
// version 0/1): an ongoing transaction goes to PrepareCommit or
// PrepareAbort. The client is answered once that is written (Complete),
// and Complete returns the MarkerJob to carry out. A retry after the
// transaction completed the same way is answered success with nothing to
// write; the other way round, or with no transaction, INVALID_TXN_STATE;
// while the previous end is still in progress, CONCURRENT_TRANSACTIONS.
func (c *Coordinator) EndTxn(req EndTxnRequest, now time.Time) (*kerr.Error, *Transition) {
	if req.TransactionalID == "" {
		return kerr.InvalidRequest, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, e, kerrv := c.checkProducer(req.TransactionalID, req.ProducerID, req.ProducerEpoch)
	if kerrv != nil {
		return kerrv, nil
	}
	if e.pending != nil {
		return kerr.ConcurrentTransactions, nil
	}
	m := e.meta
	switch m.State {
	case Ongoing:
	case CompleteCommit, CompleteAbort:
		if req.Commit == (m.State == CompleteCommit) {
			return nil, nil
		}
		return kerr.InvalidTxnState, nil
	case PrepareCommit, PrepareAbort:
		if req.Commit == (m.State == PrepareCommit) {
			return kerr.ConcurrentTransactions, nil
		}
		return kerr.InvalidTxnState, nil
	default:
		return kerr.InvalidTxnState, nil
	}
	next := m.clone()
	next.State = PrepareAbort
	if req.Commit {
		next.State = PrepareCommit
	}
	next.LastUpdateMs = max(now.UnixMilli(), m.LastUpdateMs)
	t, err := c.prepare(sp, e, next, prepareEnd)
	if err != nil {
		return kerr.UnknownServerError, nil
	}
	return nil, t
}

// ExpiredTxn names a transaction past its timeout.
type ExpiredTxn struct {
	TransactionalID string
	ProducerID      int64
	ProducerEpoch   int16
}

// Expired lists the ongoing transactions whose transaction.timeout.ms has
// passed at now, counted from when their first partition was added
// (Kafka's timedOutTransactions), skipping those with a transition in
// flight. It changes nothing; the broker calls it from a timer
// (transaction.abort.timed.out.transaction.cleanup.interval.ms) and
// aborts each with AbortExpired.
func (c *Coordinator) Expired(now time.Time) []ExpiredTxn {
	c.mu.Lock()
	defer c.mu.Unlock()
	nowMs := now.UnixMilli()
	var out []ExpiredTxn
	for _, sp := range c.mu.partitions {
		if sp.loading {
			continue
		}
		for id, e := range sp.txns {
			m := e.meta
			if e.pending == nil && m.State == Ongoing && m.StartTimeMs+int64(m.TimeoutMs) < nowMs {
				out = append(out, ExpiredTxn{TransactionalID: id, ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

// AbortExpired aborts a transaction Expired listed: the producer's epoch is
// bumped (so the hung producer is fenced) and PrepareAbort prepared, as
// Kafka's abortTimedOutTransactions does. nil means nothing to do any more
// (it ended, or another producer id took over, or a transition is in
// flight). Write the transition and Complete it; its MarkerJob follows.
func (c *Coordinator) AbortExpired(x ExpiredTxn, now time.Time) *Transition {
	c.mu.Lock()
	defer c.mu.Unlock()
	sp, kerrv := c.lookup(x.TransactionalID)
	if kerrv != nil {
		return nil
	}
	e := sp.txns[x.TransactionalID]
	if e == nil || e.meta.ProducerID != x.ProducerID || e.pending != nil || e.meta.State != Ongoing {
		return nil
	}
	t, err := c.fence(sp, e, max(now.UnixMilli(), e.meta.LastUpdateMs))
	if err != nil {
		return nil
	}
	return t
}

// ExpireTransactionalIDs prepares a tombstone for every id with no
// transaction in flight whose last update is transactional.id.expiration.ms
// old (Kafka's removeExpiredTransactionalIds). Write each (a null value)
// and Complete it; the id is then forgotten, and a producer using it gets
// INVALID_PRODUCER_ID_MAPPING until it calls InitProducerId again.
func (c *Coordinator) ExpireTransactionalIDs(now time.Time) []*Transition {
	c.mu.Lock()
	defer c.mu.Unlock()
	horizon := now.UnixMilli() - c.cfg.IDExpiration.Milliseconds()
	var out []*Transition
	for _, sp := range c.mu.partitions {
		if sp.loading {
			continue
		}
		ids := make([]string, 0, len(sp.txns))
		for id := range sp.txns {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			e := sp.txns[id]
			if e.pending != nil || !e.meta.State.expirationAllowed() || e.meta.LastUpdateMs > horizon {
				continue
			}
			next := e.meta.clone()
			next.State = Dead
			if t, err := c.prepare(sp, e, next, expireID); err == nil {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}
