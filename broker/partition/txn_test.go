package partition

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/clock"
	"github.com/strata-broker/strata/localstore"
)

// txnBatch is batch with the transactional attribute.
func txnBatch(n int, ts int64, pid int64, epoch int16, seq int32) []byte {
	b := batch(n, ts, pid, epoch, seq)
	b[22] |= 0x10 // attributes' low byte (int16 at offset 21)
	localstore.SetCRC(b)
	return b
}

// verifyAs answers every verification with err.
func verifyAs(id string, err *kerr.Error, calls *int) *Txn {
	return &Txn{TransactionalID: id, Verify: func(context.Context, int64, int16) *kerr.Error {
		*calls++
		return err
	}}
}

// TestTxnVerificationOnlyStartsATransaction: the coordinator is asked only
// for the batch that would start the producer's transaction here; a refusal
// is the produce's answer; later batches of the open transaction need no
// question; after the marker the next transaction is verified again.
func TestTxnVerificationOnlyStartsATransaction(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	ts := now.UnixMilli()
	calls := 0
	if res := p.Produce(ctx, txnBatch(1, ts, 9, 0, 0), -1, verifyAs("x", kerr.InvalidTxnState, &calls)); res.Err != kerr.InvalidTxnState || calls != 1 {
		t.Fatalf("refused verification: %v after %d calls", res.Err, calls)
	}
	if res := p.Produce(ctx, txnBatch(1, ts, 9, 0, 0), -1, verifyAs("x", nil, &calls)); res.Err != nil || calls != 2 {
		t.Fatalf("verified first batch: %v after %d calls", res.Err, calls)
	}
	if res := p.Produce(ctx, txnBatch(2, ts, 9, 0, 1), -1, verifyAs("x", kerr.InvalidTxnState, &calls)); res.Err != nil || calls != 2 {
		t.Fatalf("second batch of the open transaction: %v after %d calls", res.Err, calls)
	}
	if res := p.Produce(ctx, batch(1, ts, 9, 0, 3), -1, nil); res.Err != kerr.InvalidTxnState {
		t.Fatalf("non-transactional batch inside the transaction: %v", res.Err)
	}
	if lso := p.LastStableOffset(); lso != 0 {
		t.Fatalf("LSO %d with the transaction open at 0", lso)
	}
	off, kerrv := p.AppendMarker(ctx, Marker{ProducerID: 9, ProducerEpoch: 0, CoordinatorEpoch: 1, Commit: false})
	if kerrv != nil || off != 3 {
		t.Fatalf("abort marker: %d %v", off, kerrv)
	}
	if lso := p.LastStableOffset(); lso != 4 {
		t.Fatalf("LSO %d after the marker, want 4", lso)
	}
	aborted, err := p.AbortedTransactions(0, 4)
	if err != nil || len(aborted) != 1 || aborted[0].ProducerID != 9 || aborted[0].FirstOffset != 0 || aborted[0].LastOffset != 3 {
		t.Fatalf("aborted transactions: %+v %v", aborted, err)
	}
	if res := p.Produce(ctx, txnBatch(1, ts, 9, 0, 3), -1, verifyAs("x", nil, &calls)); res.Err != nil || calls != 3 {
		t.Fatalf("next transaction: %v after %d calls", res.Err, calls)
	}
	if res := p.Produce(ctx, txnBatch(1, ts, 10, 0, 0), -1, nil); res.Err != kerr.TransactionalIDAuthorizationFailed {
		t.Fatalf("transactional batch without a transactional id: %v", res.Err)
	}
	ctl := localstore.BuildControlBatch(9, 0, 1, true, ts)
	if res := p.Produce(ctx, ctl, -1, verifyAs("x", nil, &calls)); res.Err != kerr.InvalidRecord {
		t.Fatalf("client control batch: %v", res.Err)
	}
}

// TestTxnVerificationGuardABA: a verification answered for a transaction
// that a marker ended before the append must not open a new transaction
// (KIP-890's reason for guards): the append is INVALID_TXN_STATE.
func TestTxnVerificationGuardABA(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	ts := now.UnixMilli()
	late := &Txn{TransactionalID: "x", Verify: func(context.Context, int64, int16) *kerr.Error {
		// While the coordinator "answers", the transaction is aborted
		// by its timeout and the marker lands here.
		if _, kerrv := p.AppendMarker(ctx, Marker{ProducerID: 5, ProducerEpoch: 0, CoordinatorEpoch: 0}); kerrv != nil {
			t.Errorf("marker: %v", kerrv)
		}
		return nil
	}}
	if res := p.Produce(ctx, txnBatch(1, ts, 5, 0, 0), -1, late); res.Err != kerr.InvalidTxnState {
		t.Fatalf("append after a marker dropped the guard: %v", res.Err)
	}
	if e, ok := p.log.ProducerState(5); ok && e.InTransaction() {
		t.Fatal("a hanging transaction was started")
	}
	// A later guard for the same producer replaces an older one.
	v1 := p.BeginVerification(5, 0)
	v2 := p.BeginVerification(5, 0)
	if _, err := p.AppendTransactional(ctx, txnBatch(1, ts, 5, 0, 1), v1); !errors.Is(err, kerr.InvalidTxnState) {
		t.Fatalf("append with a replaced guard: %v", err)
	}
	if _, err := p.AppendTransactional(ctx, txnBatch(1, ts, 5, 0, 1), v2); err != nil {
		t.Fatalf("append with the current guard: %v", err)
	}
}

// TestTxnMarkerFencing: Kafka's marker checks — an older producer epoch or
// coordinator epoch is refused and writes nothing.
func TestTxnMarkerFencing(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	p := openTest(t, clock.NewFake(now))
	ctx := context.Background()
	if _, kerrv := p.AppendMarker(ctx, Marker{ProducerID: 3, ProducerEpoch: 4, CoordinatorEpoch: 7, Commit: true}); kerrv != nil {
		t.Fatal(kerrv)
	}
	end := p.LogEndOffset()
	for _, tc := range []struct {
		name string
		m    Marker
		want *kerr.Error
	}{
		{"older producer epoch", Marker{ProducerID: 3, ProducerEpoch: 3, CoordinatorEpoch: 7}, kerr.InvalidProducerEpoch},
		{"older coordinator epoch", Marker{ProducerID: 3, ProducerEpoch: 4, CoordinatorEpoch: 6}, kerr.TransactionCoordinatorFenced},
	} {
		if _, kerrv := p.AppendMarker(ctx, tc.m); kerrv != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, kerrv, tc.want)
		}
	}
	if p.LogEndOffset() != end {
		t.Fatalf("refused markers were written: end %d → %d", end, p.LogEndOffset())
	}
	// The coordinator's state writes are bound to its leader epoch.
	if _, err := p.AppendInternalAt(ctx, batch(1, now.UnixMilli(), -1, -1, -1), p.LeaderEpoch()+1); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("write at another leader epoch: %v", err)
	}
	if _, err := p.AppendInternalAt(ctx, batch(1, now.UnixMilli(), -1, -1, -1), p.LeaderEpoch()); err != nil {
		t.Fatalf("write at the leader epoch: %v", err)
	}
	// A fenced producer's transactional coordinator batch.
	if _, err := p.AppendTransactional(ctx, txnBatch(1, now.UnixMilli(), 3, 2, -1), p.BeginVerification(3, 2)); !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Fatalf("transactional batch at an older epoch: %v", err)
	}
}
