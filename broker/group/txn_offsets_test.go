package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// txnCommit is TxnOffsetCommit v3 of t-0 at offset for producer pid.
func (f *fixture) txnCommit(groupID string, pid int64, epoch int16, offset int64) *kerr.Error {
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", groupID, pid, epoch
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = 0, offset
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{rp}}}
	return errFor(f.c.TxnOffsetCommit(ctx, req, nil).Topics[0].Partitions[0].ErrorCode)
}

// stableFetch is OffsetFetch v7 of t-0 with require_stable.
func (f *fixture) stableFetch(groupID string) (int64, *kerr.Error) {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group, req.RequireStable = 7, groupID, true
	req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	p := f.c.OffsetFetch(ctx, req).Topics[0].Partitions[0]
	return p.Offset, errFor(p.ErrorCode)
}

// TestTxnOffsetsPendingUntilMarker: transactional offsets are invisible
// (UNSTABLE_OFFSET_COMMIT with require_stable) until the commit marker;
// an abort drops them; a marker only resolves offsets written before it.
func TestTxnOffsetsPendingUntilMarker(t *testing.T) {
	h := newMemHost(1)
	f := newFixture(t, h, nil)
	wantErr(t, "commit 5 in a transaction", f.txnCommit("g", 7, 0, 5), errNone)
	if off, err := f.stableFetch("g"); err != kerr.UnstableOffsetCommit || off != -1 {
		t.Fatalf("require_stable while pending: %d %v", off, err)
	}
	if o, err := f.fetch("g"); err != nil || len(o["t"]) != 0 {
		t.Fatalf("plain fetch of all committed offsets while pending: %v %v", o, err)
	}
	m := h.logs[0].appendMarker(7, 0, true)
	f.c.CompleteTransaction(0, 7, true, m)
	if off, err := f.stableFetch("g"); err != errNone || off != 5 {
		t.Fatalf("after the commit marker: %d %v", off, err)
	}
	// An abort leaves 5.
	wantErr(t, "commit 9", f.txnCommit("g", 7, 0, 9), errNone)
	f.c.CompleteTransaction(0, 7, false, h.logs[0].appendMarker(7, 0, false))
	if off, err := f.stableFetch("g"); err != errNone || off != 5 {
		t.Fatalf("after the abort marker: %d %v", off, err)
	}
	// A late copy of the first commit marker is older than offset 11's
	// record: 11 stays pending.
	wantErr(t, "commit 11", f.txnCommit("g", 7, 0, 11), errNone)
	f.c.CompleteTransaction(0, 7, true, m)
	if _, err := f.stableFetch("g"); err != kerr.UnstableOffsetCommit {
		t.Fatalf("an old marker resolved a newer commit: %v", err)
	}
	// A plain commit after the transactional one wins over it (Kafka's
	// olderThan by log position).
	wantErr(t, "plain commit of 20", f.commit("g", "", -1, "t", map[int32]int64{0: 20})[0], errNone)
	f.c.CompleteTransaction(0, 7, true, h.logs[0].appendMarker(7, 0, true))
	if off, err := f.stableFetch("g"); err != errNone || off != 20 {
		t.Fatalf("the later plain commit must win: %d %v", off, err)
	}
	// A fenced producer epoch is refused by the log.
	wantErr(t, "commit at a newer epoch", f.txnCommit("g", 7, 3, 30), errNone)
	wantErr(t, "commit at an older epoch", f.txnCommit("g", 7, 2, 31), kerr.InvalidProducerEpoch)
}

// TestTxnOffsetsReplay: a coordinator loading the partition rebuilds what
// the markers decided — committed, aborted, and still pending — and a marker
// written while it loads is applied once the load is installed.
func TestTxnOffsetsReplay(t *testing.T) {
	h := newMemHost(1)
	f := newFixture(t, h, nil)
	l := h.logs[0]
	wantErr(t, "commit g1=5 (pid 1)", f.txnCommit("g1", 1, 0, 5), errNone)
	wantErr(t, "commit g2=6 (pid 2)", f.txnCommit("g2", 2, 0, 6), errNone)
	wantErr(t, "commit g3=7 (pid 3)", f.txnCommit("g3", 3, 0, 7), errNone)
	l.appendMarker(1, 0, true)  // g1 committed
	l.appendMarker(2, 0, false) // g2 aborted; g3 still open
	f.c.Close()

	l.gate, l.readStarted = make(chan struct{}), make(chan struct{}, 1)
	f2 := newFixture(t, h, nil)
	<-l.readStarted
	// pid 3 ends while the partition loads, past what the loader reads.
	f2.c.CompleteTransaction(0, 3, true, l.appendMarker(3, 0, true))
	close(l.gate)
	if !f2.waitLoad(0) {
		t.Fatal("load not installed")
	}
	for _, tc := range []struct {
		group string
		want  int64
	}{{"g1", 5}, {"g2", -1}, {"g3", 7}} {
		off, err := f2.stableFetch(tc.group)
		if err != errNone || off != tc.want {
			t.Errorf("%s after replay: %d %v, want %d", tc.group, off, err, tc.want)
		}
	}

	// A transaction open at the end of the log stays pending after a load.
	wantErr(t, "commit g1=8 (pid 4)", f2.txnCommit("g1", 4, 0, 8), errNone)
	f2.c.Close()
	f3 := newFixture(t, h, nil)
	f3.waitLoad(0)
	if _, err := f3.stableFetch("g1"); err != kerr.UnstableOffsetCommit {
		t.Fatalf("open transaction after replay: %v", err)
	}
	f3.c.CompleteTransaction(0, 4, true, l.appendMarker(4, 0, true))
	if off, err := f3.stableFetch("g1"); err != errNone || off != 8 {
		t.Fatalf("commit after replay: %d %v", off, err)
	}
}

// TestTxnOffsetCommitValidation: Kafka's checks for TxnOffsetCommit.
func TestTxnOffsetCommitValidation(t *testing.T) {
	f := newFixture(t, newMemHost(1), nil)
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.Version = 3
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = "tx", "g", 1, 0
	req.MemberID, req.Generation = "nobody", 4
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}, {Partition: 99, Offset: 1}}}}
	ps := f.c.TxnOffsetCommit(ctx, req, nil).Topics[0].Partitions
	wantErr(t, "unknown member", errFor(ps[0].ErrorCode), kerr.UnknownMemberID)
	wantErr(t, "unknown partition", errFor(ps[1].ErrorCode), kerr.UnknownTopicOrPartition)
	req.MemberID, req.Generation, req.Group = "", -1, ""
	wantErr(t, "no group", errFor(f.c.TxnOffsetCommit(ctx, req, nil).Topics[0].Partitions[0].ErrorCode), kerr.InvalidGroupID)
	req.Group, req.ProducerID = "g", -1
	wantErr(t, "no producer id", errFor(f.c.TxnOffsetCommit(ctx, req, nil).Topics[0].Partitions[0].ErrorCode), kerr.InvalidProducerIDMapping)
}
