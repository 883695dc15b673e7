package broker

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/txn"
	"github.com/strata-broker/strata/coord"
)

// InitProducerID, versions 0–4.
//
// Idempotent producers (no transactional id) get a fresh producer id with
// epoch 0, as Kafka's ProducerIdManager gives; a producer that sends its old
// id and epoch (KIP-360, v3+) also gets a fresh id, which resets its
// sequences. Ids come from coord in blocks so they are never reused, even
// after a restart.
//
// Transactional producers (KIP-98) go to the coordinator of their
// transactional id (the leader of its __transaction_state partition;
// NOT_COORDINATOR elsewhere): a new id gets a producer id at epoch 0, a
// known one its epoch bumped, fencing older instances (zombie fencing); a
// producer still inside a transaction has it aborted first and gets
// CONCURRENT_TRANSACTIONS until the abort is written (it retries).
// transaction.timeout.ms above transaction.max.timeout.ms is
// INVALID_TRANSACTION_TIMEOUT. v3+ may name the producer's current id and
// epoch (KIP-360) to recover after an error without losing its id.
// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH before v4, as Kafka answers
// clients that predate it (KIP-588). v5 (TRANSACTION_ABORTABLE, KIP-890)
// is not advertised.
func init() { register(kmsg.InitProducerID, 0, 4, handleInitProducerID) }

func handleInitProducerID(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		b := c.b
		pid, epoch := int64(-1), int16(-1)
		if h.version >= 3 {
			pid, epoch = req.ProducerID, req.ProducerEpoch
		}
		if _, err := b.txn.ensureStateTopic(b.ctx); err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp, nil
		}
		kerrv, t := b.txn.c.InitProducerID(txn.InitProducerIDRequest{
			TransactionalID: *req.TransactionalID, TimeoutMs: req.TransactionTimeoutMillis,
			ProducerID: pid, ProducerEpoch: epoch,
		}, b.now(), func() (int64, error) { return b.pids.next(b.ctx) })
		if kerrv == nil {
			res := b.txn.apply(t)
			kerrv = res.Err
			if kerrv == nil {
				resp.ProducerID, resp.ProducerEpoch = res.ProducerID, res.ProducerEpoch
			}
		}
		if kerrv == kerr.ProducerFenced && h.version < 4 {
			kerrv = kerr.InvalidProducerEpoch
		}
		if kerrv != nil {
			resp.ErrorCode = kerrv.Code
		}
		return resp, nil
	}
	id, err := c.b.pids.next(c.b.ctx)
	if err != nil {
		c.log.Error("allocate producer id failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// producerIDs hands out ids from blocks reserved in coord.
type producerIDs struct {
	coord coord.Coordinator
	mu    sync.Mutex
	next_ int64
	end   int64
}

const producerIDBlock = 1000

func newProducerIDs(c coord.Coordinator) *producerIDs { return &producerIDs{coord: c} }

func (p *producerIDs) next(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next_ >= p.end {
		first, err := p.coord.AllocateProducerIDs(ctx, producerIDBlock)
		if err != nil {
			return 0, err
		}
		p.next_, p.end = first, first+producerIDBlock
	}
	id := p.next_
	p.next_++
	return id, nil
}
