package broker

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/coord"
)

// InitProducerID, versions 0–4.
//
// Idempotent producers (no transactional id) get a fresh producer id with
// epoch 0, as Kafka's ProducerIdManager gives; a producer that sends its old
// id and epoch (KIP-360, v3+) also gets a fresh id, which resets its
// sequences. Ids come from coord in blocks so they are never reused, even
// after a restart. Transactional ids are refused until transactions land.
func init() { register(kmsg.InitProducerID, 0, 4, handleInitProducerID) }

func handleInitProducerID(c *conn, h *reqHeader, kreq kmsg.Request) (any, error) {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	if req.TransactionalID != nil && *req.TransactionalID != "" {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		return resp, nil
	}
	id, err := c.b.pids.next(c.b.ctx)
	if err != nil {
		c.log.Error("allocate producer id failed", "err", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		resp.ProducerID, resp.ProducerEpoch = -1, -1
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
