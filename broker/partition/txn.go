package partition

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/localstore"
	"github.com/strata-broker/strata/tiering"
)

// Transactions (KIP-98) at one partition: the rules a leader applies to
// transactional writes, the markers the transaction coordinator asks it to
// append (WriteTxnMarkers), and reads bounded by the last stable offset. The
// log (localstore) tracks each producer's ongoing transaction and the aborted
// ones; this file decides what may be appended, always under the append lock
// (Partition.mu), so every write still goes through one path.

// Verification is a KIP-890 (part 1) verification guard: before the first
// transactional write of a producer's transaction to this partition, the
// leader asks the transaction coordinator whether the partition is in that
// transaction (AddPartitionsToTxn verify_only), and appends only if the
// guard it took before asking is still the producer's current one. A marker
// for the producer drops the guard, so a verification answered for a
// transaction that ended meanwhile can never start a new, hanging
// transaction in the log (Kafka's VerificationGuard and its ABA argument in
// UnifiedLog.analyzeAndValidateProducerState).
type Verification struct {
	producerID int64
	epoch      int16
}

// BeginVerification takes a guard for producerID's next transactional write,
// or returns nil when the producer already has an ongoing transaction here
// and needs no verification (Kafka's maybeStartTransactionVerification).
// A later guard for the producer replaces an earlier one.
func (p *Partition) BeginVerification(producerID int64, epoch int16) *Verification {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := p.log.ProducerState(producerID); ok && e.InTransaction() {
		return nil
	}
	if p.verifying == nil {
		p.verifying = map[int64]*Verification{}
	}
	v := &Verification{producerID: producerID, epoch: epoch}
	p.verifying[producerID] = v
	return v
}

// EndVerification drops a guard whose verification failed, so the table
// holds only guards still in use.
func (p *Partition) EndVerification(v *Verification) {
	if v == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.verifying[v.producerID] == v {
		delete(p.verifying, v.producerID)
	}
}

// checkTxnLocked applies Kafka's transactional rules to a data batch of a
// producer (ProducerAppendInfo.appendDataBatch and the verification check):
// a non-transactional batch while the producer's transaction is ongoing is
// INVALID_TXN_STATE; a transactional batch that would start a transaction
// needs the producer's current verification guard. Caller holds p.mu and
// has run the epoch and sequence checks.
func (p *Partition) checkTxnLocked(hdr localstore.BatchHeader, v *Verification) *kerr.Error {
	if hdr.ProducerID < 0 {
		return nil
	}
	e, known := p.log.ProducerState(hdr.ProducerID)
	ongoing := known && e.InTransaction()
	switch {
	case !hdr.IsTransactional() && ongoing:
		return kerr.InvalidTxnState
	case !hdr.IsTransactional() || ongoing:
		return nil
	case v == nil || p.verifying[hdr.ProducerID] != v:
		return kerr.InvalidTxnState
	}
	return nil
}

// txnAppendedLocked forgets the guard of a producer whose transaction is now
// ongoing in the log (or was just ended by a marker). Caller holds p.mu.
func (p *Partition) txnAppendedLocked(producerID int64) {
	delete(p.verifying, producerID)
}

// Marker is a transaction marker the coordinator asks this leader to write.
type Marker struct {
	ProducerID       int64
	ProducerEpoch    int16
	CoordinatorEpoch int32
	Commit           bool
}

// AppendMarker appends a commit or abort marker (localstore.BuildControlBatch)
// as leader and returns its offset once it is committed (acks=all, as Kafka
// writes markers). Kafka's checks come first (ProducerAppendInfo): a
// producer epoch older than the one this partition has seen is
// INVALID_PRODUCER_EPOCH, a coordinator epoch older than the last marker's
// TRANSACTION_COORDINATOR_FENCED (a zombie coordinator); fewer in-sync
// replicas than min.insync.replicas is NOT_ENOUGH_REPLICAS before anything
// is written. The marker ends the producer's transaction here whether or not
// it wrote data (an empty transaction writes a marker too).
func (p *Partition) AppendMarker(ctx context.Context, m Marker) (int64, *kerr.Error) {
	if err := p.checkMinISR(p.cfg.Load().MinInsyncReplicas); err != nil {
		return -1, err
	}
	batch := localstore.BuildControlBatch(m.ProducerID, m.ProducerEpoch, m.CoordinatorEpoch, m.Commit, p.clock.Now().UnixMilli())
	info, err := p.appendChecked(ctx, batch, -1, func() *kerr.Error {
		if e, ok := p.log.ProducerState(m.ProducerID); ok {
			switch {
			case m.ProducerEpoch < e.Epoch:
				return kerr.InvalidProducerEpoch
			case e.CoordinatorEpoch > m.CoordinatorEpoch:
				return kerr.TransactionCoordinatorFenced
			}
		}
		return nil
	}, m.ProducerID)
	if err != nil {
		return -1, kerrOf(err)
	}
	return info.BaseOffset, nil
}

// AppendInternalAt is AppendInternal for a writer bound to one leader epoch:
// the transaction coordinator writes __transaction_state only at the epoch
// it loaded the partition at (its coordinator epoch), so a write prepared
// before a re-election is refused (NOT_LEADER_OR_FOLLOWER) rather than
// landing in a log another load has already read. Like an acks=all
// produce it is refused before anything is written when the ISR is smaller
// than min.insync.replicas (NOT_ENOUGH_REPLICAS, wrapped), so a write the
// coordinator reports failed is not left in the log either.
func (p *Partition) AppendInternalAt(ctx context.Context, batch []byte, leaderEpoch int32) (localstore.AppendInfo, error) {
	if kerrv := p.checkMinISR(p.cfg.Load().MinInsyncReplicas); kerrv != nil {
		return localstore.AppendInfo{}, fmt.Errorf("partition: append to %s-%d: %w", p.Topic, p.Index, kerrv)
	}
	return p.appendChecked(ctx, batch, leaderEpoch, nil, -1)
}

// AppendTransactional appends a transactional batch the broker built for a
// producer: the group coordinator's TxnOffsetCommit records in
// __consumer_offsets. The producer's epoch must not be older than this
// partition has seen (INVALID_PRODUCER_EPOCH: a fenced zombie), and a batch
// that starts the producer's transaction here needs its verification guard
// (INVALID_TXN_STATE otherwise), as for produced batches. Errors wrap the
// Kafka error.
func (p *Partition) AppendTransactional(ctx context.Context, batch []byte, v *Verification) (localstore.AppendInfo, error) {
	hdr, err := localstore.ParseBatchHeader(batch)
	if err != nil {
		return localstore.AppendInfo{}, fmt.Errorf("partition: transactional append to %s-%d: %w", p.Topic, p.Index, err)
	}
	if !hdr.IsTransactional() || hdr.IsControl() || hdr.ProducerID < 0 {
		return localstore.AppendInfo{}, fmt.Errorf("partition: transactional append to %s-%d: %w: not a transactional data batch", p.Topic, p.Index, kerr.InvalidRecord)
	}
	return p.appendChecked(ctx, batch, -1, func() *kerr.Error {
		if e, ok := p.log.ProducerState(hdr.ProducerID); ok && hdr.ProducerEpoch < e.Epoch {
			return kerr.InvalidProducerEpoch
		}
		return p.checkTxnLocked(hdr, v)
	}, hdr.ProducerID)
}

// appendChecked is the internal write path: under the append lock it checks
// leadership (and the leader epoch, unless -1), runs check, appends, drops
// producerID's verification guard (unless -1), and then waits for the high
// watermark as acks=all does, bounded by ctx.
func (p *Partition) appendChecked(ctx context.Context, batch []byte, leaderEpoch int32, check func() *kerr.Error, producerID int64) (localstore.AppendInfo, error) {
	p.mu.Lock()
	if !p.IsLeader() || (leaderEpoch >= 0 && p.leaderEpoch.Load() != leaderEpoch) {
		p.mu.Unlock()
		return localstore.AppendInfo{}, ErrNotLeader
	}
	if check != nil {
		if kerrv := check(); kerrv != nil {
			p.mu.Unlock()
			return localstore.AppendInfo{}, fmt.Errorf("partition: append to %s-%d refused: %w", p.Topic, p.Index, kerrv)
		}
	}
	info, err := p.log.Append(batch, p.leaderEpoch.Load(), false)
	if err != nil {
		p.mu.Unlock()
		if errors.Is(err, localstore.ErrClosed) {
			return info, ErrClosed
		}
		return info, fmt.Errorf("partition: append to %s-%d: %w", p.Topic, p.Index, err)
	}
	if producerID >= 0 {
		p.txnAppendedLocked(producerID)
	}
	w, kerrv := p.leaderAppended(info.LastOffset+1, true, p.cfg.Load().MinInsyncReplicas)
	p.noteHighWatermark()
	p.mu.Unlock()
	p.wake()
	if kerrv == nil && w != nil {
		kerrv = p.waitAcks(ctx, w)
	}
	if kerrv != nil {
		return info, fmt.Errorf("partition: append to %s-%d not committed: %w", p.Topic, p.Index, kerrv)
	}
	return info, nil
}

// kerrOf maps an append error to the Kafka error a requester gets.
func kerrOf(err error) *kerr.Error {
	var ke *kerr.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, ErrClosed):
		return kerr.NotLeaderForPartition
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut
	}
	return kerr.KafkaStorageError
}

// KafkaError is the Kafka error code an internal append's error stands for
// (NOT_LEADER_OR_FOLLOWER for a closed or deposed replica, REQUEST_TIMED_OUT
// when the wait ran out, KAFKA_STORAGE_ERROR for anything unexpected).
func KafkaError(err error) *kerr.Error { return kerrOf(err) }

// noteHighWatermark tells the log the current high watermark, so it can
// forget transactions whose markers every replica has (Kafka's
// onHighWatermarkUpdated); the log keeps the largest value it was given.
func (p *Partition) noteHighWatermark() { p.log.LastStableOffset(p.HighWatermark()) }

// LastStableOffset is the partition's LSO (KIP-98): the high watermark, or
// the first offset of the earliest transaction not yet decided and
// replicated, if lower. read_committed consumers read below it.
func (p *Partition) LastStableOffset() int64 { return p.log.LastStableOffset(p.HighWatermark()) }

// ReadLocalCommitted is ReadLocal for isolation_level=read_committed: never
// past the last stable offset.
func (p *Partition) ReadLocalCommitted(offset int64, maxBytes int, minOne bool) (localstore.Slice, error) {
	return p.log.Read(offset, max(maxBytes, 0), p.LastStableOffset(), minOne)
}

// AbortedTransactions lists the aborted transactions that overlap the local
// records [start, upper) (Kafka's collectAbortedTransactions), for a
// read_committed Fetch response.
func (p *Partition) AbortedTransactions(start, upper int64) ([]localstore.AbortedTxn, error) {
	return p.log.AbortedTransactions(start, upper)
}

// Producers is the producer state of the partition (DescribeProducers):
// every producer id the log remembers, in id order.
func (p *Partition) Producers() []localstore.ProducerEntry {
	ids := p.log.ProducerIDs()
	out := make([]localstore.ProducerEntry, 0, len(ids))
	for _, id := range ids {
		if e, ok := p.log.ProducerState(id); ok {
			out = append(out, e)
		}
	}
	return out
}

// Txn is the transactional side of a Produce request.
type Txn struct {
	// TransactionalID is the request's transactional id; a transactional
	// batch without one is TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka
	// answers.
	TransactionalID string
	// Verify asks the producer's transaction coordinator whether this
	// partition is in the producer's ongoing transaction (KIP-890:
	// AddPartitionsToTxn verify_only, or the local coordinator). It returns
	// the error to answer the produce with, already mapped for the
	// request's version; nil means verified.
	Verify func(ctx context.Context, producerID int64, producerEpoch int16) *kerr.Error
}

// verifyTxn runs the transactional checks of a produced batch before the
// append: the transactional id is present, and a batch that would start
// the producer's transaction here is verified with the coordinator, outside
// the append lock (it may be a network round trip). The returned guard goes
// to the append, which refuses the batch if a marker came in between.
func (p *Partition) verifyTxn(ctx context.Context, hdr localstore.BatchHeader, txn *Txn) (*Verification, ProduceResult) {
	if !hdr.IsTransactional() {
		return nil, ProduceResult{}
	}
	switch {
	case hdr.ProducerID < 0:
		return nil, reject(kerr.InvalidRecord, "invalid", "a transactional batch needs a producer id")
	case txn == nil || txn.TransactionalID == "":
		return nil, reject(kerr.TransactionalIDAuthorizationFailed, "", "transactional records need the request's transactional id")
	}
	v := p.BeginVerification(hdr.ProducerID, hdr.ProducerEpoch)
	if v == nil || txn.Verify == nil {
		return v, ProduceResult{}
	}
	if kerrv := txn.Verify(ctx, hdr.ProducerID, hdr.ProducerEpoch); kerrv != nil {
		p.EndVerification(v)
		return nil, reject(kerrv, "", "%s-%d could not be verified in transaction %q: %s", p.Topic, p.Index, txn.TransactionalID, kerrv.Message)
	}
	return v, ProduceResult{}
}

// ListOffsetCommitted is ListOffset for isolation_level=read_committed:
// latest is the last stable offset and nothing at or above it is found
// (Kafka's fetchOffsetByTimestamp with READ_COMMITTED).
func (p *Partition) ListOffsetCommitted(ctx context.Context, ts int64) (offset, timestamp int64, err error) {
	return p.listOffset(ctx, ts, p.LastStableOffset())
}

// ReadRemoteCommitted is ReadRemote for isolation_level=read_committed:
// batches starting at or after the last stable offset are dropped (a
// transaction still open may have started in data only the bucket has).
func (p *Partition) ReadRemoteCommitted(ctx context.Context, s *tiering.Session, offset int64, maxBytes int, waiting func()) (tiering.Records, error) {
	recs, err := p.ReadRemote(ctx, s, offset, maxBytes, waiting)
	if err != nil {
		return tiering.Records{}, err
	}
	return recs.Before(p.LastStableOffset()), nil
}

// AbortedTransactionsFrom is AbortedTransactions for a range that may
// start in the bucket: the remote segments' transaction indexes (from their
// index bundles) below the local log start, then the local log's.
func (p *Partition) AbortedTransactionsFrom(ctx context.Context, start, upper int64) ([]localstore.AbortedTxn, error) {
	localStart := p.log.LogStartOffset()
	tp := p.tier.Load()
	if tp == nil || start >= localStart {
		return p.log.AbortedTransactions(start, upper)
	}
	remote, complete, err := tp.AbortedTransactions(ctx, start, upper)
	if err != nil {
		return nil, fmt.Errorf("partition: remote aborted transactions of %s-%d: %w", p.Topic, p.Index, err)
	}
	// Remote segments still held locally are searched locally instead.
	out := remote[:0]
	for _, a := range remote {
		if a.LastOffset < localStart {
			out = append(out, a)
		}
	}
	if complete && len(out) == len(remote) {
		return out, nil
	}
	local, err := p.log.AbortedTransactions(localStart, upper)
	if err != nil {
		return nil, err
	}
	return append(out, local...), nil
}
