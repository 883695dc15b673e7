package broker

import (
	"time"

	"github.com/strata-broker/strata/broker/clock"
)

// The coordinator's timers, on the broker's clock (Options.Clock), so a test
// steps a clock.Fake instead of sleeping:
//
//   - every transaction.abort.timed.out.transaction.cleanup.interval.ms
//     (Kafka: 10 s) transactions open longer than their
//     transaction.timeout.ms are aborted: the producer's epoch is bumped
//     (fencing the hung producer) and PrepareAbort written; the abort
//     markers follow (Kafka's abortTimedOutTransactions);
//   - every transaction.remove.expired.transaction.cleanup.interval.ms
//     (Kafka: 1 h) ids idle past transactional.id.expiration.ms are
//     tombstoned (Kafka's removeExpiredTransactionalIds).
//
// A timer function does its writes itself (on a single node they return at
// once; in a cluster they wait for the in-sync replicas) and re-arms; markers
// run in the background.

func (h *txnHost) armAbort() {
	h.arm(&h.mu.abortTimer, time.Duration(h.b.settings.txnAbortCheckMs)*time.Millisecond, func() {
		h.abortTimedOut()
		h.armAbort()
	})
}

func (h *txnHost) armExpire() {
	h.arm(&h.mu.expireTimer, time.Duration(h.b.settings.txnRemoveExpiredMs)*time.Millisecond, func() {
		h.expireIDs()
		h.armExpire()
	})
}

// arm sets *slot to a timer running f after d, unless closed; close waits
// for an f already running.
func (h *txnHost) arm(slot *clock.Timer, d time.Duration, f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mu.closed {
		return
	}
	*slot = h.clock.AfterFunc(d, func() {
		h.mu.Lock()
		if h.mu.closed {
			h.mu.Unlock()
			return
		}
		h.wg.Add(1)
		h.mu.Unlock()
		defer h.wg.Done()
		f()
	})
}

// abortTimedOut aborts every transaction past its timeout.
func (h *txnHost) abortTimedOut() {
	now := h.clock.Now()
	for _, x := range h.c.Expired(now) {
		t := h.c.AbortExpired(x, now)
		if t == nil {
			continue
		}
		h.b.log.Info("aborting a transaction past its timeout", "transactional_id", x.TransactionalID,
			"producer_id", x.ProducerID, "producer_epoch", x.ProducerEpoch)
		if res := h.apply(t); res.Err != nil {
			h.b.log.Warn("cannot abort a timed-out transaction; will retry", "transactional_id", x.TransactionalID, "err", res.Err)
		}
	}
}

// expireIDs forgets transactional ids idle past their expiration.
func (h *txnHost) expireIDs() {
	for _, t := range h.c.ExpireTransactionalIDs(h.clock.Now()) {
		if res := h.apply(t); res.Err != nil {
			h.b.log.Warn("cannot expire a transactional id", "transactional_id", t.TransactionalID, "err", res.Err)
		} else {
			h.b.log.Info("expired transactional id", "transactional_id", t.TransactionalID)
		}
	}
}
